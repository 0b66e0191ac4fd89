"""K-fold cross-validation: the parent folder of K fold runs, with their scores and out-of-fold predictions.

Each fold is an ordinary run folder beside the parent (cached, resumable, listed by `runs`): fold
k trains on the rows outside the k-th stratified fold and validates (stops early, and is scored) on
the rows inside it (data/splits.py). The parent, data/runs/<slug>/<model>-cv<K>-<hash>/, holds:
- cv.json: the metric's name, `folds`, `fold_scores` (each fold's validation score under the run's
  test-time augmentation), their `mean` and `std`, and `oof`, the score of the pooled out-of-fold
  predictions;
- oof.npz: `predictions` (keypoints in pixels, or class probabilities), one per training row in
  the processed arrays' order (training.csv's; Training's rows of fer2013.csv), each made by the
  one fold model that did not train on it, with `fold` (each row's fold) and `row`;
- ensemble.json naming the folds, so that predict averages the K models on the test images;
- predictor.json, params.json and metrics.json (each validation score averaged over the folds:
  `--run best` ranks the run by its CV mean).
PublicTest and PrivateTest play no part here; predict scores the averaged model on them.
"""
import numpy as np

from pipeline.core.competitions import VALIDATION_METRIC
from pipeline.core.fileio import load_arrays, save_arrays, write_json
from pipeline.core.layout import ARRAYS, CROSS_VALIDATION, ENSEMBLE, METRICS, OUT_OF_FOLD, PARAMS, PREDICTOR
from pipeline.data.splits import fold_of_rows
from pipeline.inference.rundir import RunDir
from pipeline.inference.tta import predict_keypoints, predict_probabilities
from pipeline.training.evaluate import score


def run(competition, processed, cv_dir, fold_dirs, params):
    """Write the parent folder for the trained fold runs `fold_dirs` (fold k at index k) of `params`."""
    task = competition.task
    folds = [RunDir(folder) for folder in fold_dirs]
    data = load_arrays(processed / ARRAYS)
    fold = fold_of_rows(task, data, len(folds), params["seed"])
    predictions = out_of_fold(task, folds, data["train_x"], fold, params["batch_size"])

    metric = VALIDATION_METRIC[task][0]
    scores = [member.score() for member in folds]
    summary = {"metric": metric, "tta": folds[0].tta, "folds": len(folds), "fold_scores": scores,
               "mean": float(np.mean(scores)), "std": float(np.std(scores)),
               "oof": pooled_score(task, predictions, data, folds[0])}
    cv_dir.mkdir(parents=True, exist_ok=True)
    save_arrays(cv_dir / OUT_OF_FOLD, predictions=predictions, fold=fold, row=np.arange(len(fold)))
    write_json(cv_dir / CROSS_VALIDATION, summary)
    write_json(cv_dir / ENSEMBLE, {"members": [member.name for member in folds]})
    write_json(cv_dir / PREDICTOR, folds[0].predictor)
    write_json(cv_dir / PARAMS, {**params, "folds": len(folds)})
    metrics = averaged_metrics([member.metrics for member in folds])
    metrics.update(cv_mean=summary["mean"], cv_std=summary["std"], folds=len(folds),
                   members={member.name: score for member, score in zip(folds, scores)})
    write_json(cv_dir / METRICS, metrics)
    return {"cv_mean": summary["mean"], "cv_std": summary["std"], "oof": summary["oof"], "folds": len(folds),
            **{k: metrics[k] for k in metrics if k.startswith((metric, "baseline", "majority_accuracy"))}}


def out_of_fold(task, folds, images, fold, batch_size):
    """Every training row predicted by the model of its own fold, under that run's TTA."""
    predictions = None
    for k, member in enumerate(folds):
        rows = np.flatnonzero(fold == k)
        models = member.load_models()
        if task == "keypoints":
            predicted = predict_keypoints(models, images[rows], member.scaling, batch_size, member.tta)
        else:
            predicted = predict_probabilities(models, images[rows], batch_size, member.tta)
        if predictions is None:
            predictions = np.full((len(fold), predicted.shape[1]), np.nan, np.float32)
        predictions[rows] = predicted
    return predictions


def pooled_score(task, predictions, data, run):
    """The validation metric of all out-of-fold predictions together (RMSE in pixels, or accuracy)."""
    if task == "keypoints":
        return score(task, predictions, run.scaling.inverse_transform(data["train_y"]))
    return score(task, predictions, data["train_labels"])


SHARED = ("parameters", "majority_class", "replicas", "workers", "epochs")   # the same for every fold


def averaged_metrics(each):
    """Every number all the folds' metrics.json have, averaged (validation scores under each TTA,
    baselines, best epochs); training time summed; what the folds share, once."""
    numbers = [key for key, value in each[0].items()
               if isinstance(value, (int, float)) and not isinstance(value, bool) and all(key in m for m in each)]
    combined = {key: float(np.mean([m[key] for m in each])) for key in numbers if key not in SHARED}
    combined.update({key: each[0][key] for key in SHARED if key in each[0]})
    if "train_seconds" in combined:
        combined["train_seconds"] = round(float(np.sum([m["train_seconds"] for m in each])), 1)
    return combined
