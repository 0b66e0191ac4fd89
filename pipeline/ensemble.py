"""Ensembles: K runs of one recipe that differ only in their seed, averaged at prediction time.

An ensemble folder (data/runs/<slug>/<model>-x<K>-<hash>/) holds ensemble.json (its member runs,
ordinary run folders beside it), predictor.json, params.json and metrics.json: the validation score
of the averaged prediction under each test-time augmentation, beside each member's own. Members share the
validation rows (the split does not depend on the seed), so the average is judged on rows no member
trained on. Probabilities are averaged for expressions, pixel coordinates for keypoints.
"""
import numpy as np

from .fileio import read_json, write_json

ENSEMBLE = "ensemble.json"


def outputs(ensemble_dir):
    from .predict import PREDICTOR
    from .train import METRICS, PARAMS

    return [ensemble_dir / name for name in (ENSEMBLE, PREDICTOR, PARAMS, METRICS)]


def is_ensemble(run_dir):
    return (run_dir / ENSEMBLE).exists()


def member_dirs(run_dir):
    """The run folders whose models make up `run_dir`'s predictions (itself, for a single run)."""
    if not is_ensemble(run_dir):
        return [run_dir]
    return [run_dir.parent / name for name in read_json(run_dir / ENSEMBLE)["members"]]


def run(competition, processed, ensemble_dir, members, params):
    """Write the ensemble folder for trained `members` (run folders) of `params` (seed = the first's)."""
    from .predict import PREDICTOR, TTA_VIEWS, load_models, predict_keypoints, predict_probabilities
    from .train import METRICS, PARAMS, load_training_data, tta_keys

    task = competition.task
    data = load_training_data(task, processed, params)
    models = load_models(members)
    batch_size = params["batch_size"]
    if task == "keypoints":
        truth = data.scaling.inverse_transform(data.val_y)
        present = ~np.isnan(truth)
        score = lambda tta: float(np.sqrt(np.mean(  # noqa: E731
            (predict_keypoints(models, data.val_x, data.scaling, batch_size, tta) - truth)[present] ** 2)))
        name = "val_rmse"
    else:
        score = lambda tta: float(np.mean(  # noqa: E731
            predict_probabilities(models, data.val_x, batch_size, tta).argmax(1) == data.val_labels))
        name = "val_accuracy"
    first = read_json(members[0] / METRICS)
    baselines = {k: v for k, v in first.items() if k in ("baseline_rmse", "majority_accuracy", "majority_class")}
    metrics = {**tta_keys(name, {tta: score(tta) for tta in TTA_VIEWS}), **baselines,
               "members": {member.name: read_json(member / METRICS)[name] for member in members}}
    ensemble_dir.mkdir(parents=True, exist_ok=True)
    write_json(ensemble_dir / ENSEMBLE, {"members": [member.name for member in members]})
    write_json(ensemble_dir / PREDICTOR, read_json(members[0] / PREDICTOR))
    write_json(ensemble_dir / PARAMS, {**params, "ensemble": len(members)})
    write_json(ensemble_dir / METRICS, metrics)
    return metrics
