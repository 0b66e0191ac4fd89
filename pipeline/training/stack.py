"""stack: a level-2 scikit-learn model fitted on cross-validated runs' out-of-fold predictions.

Inputs are the members' oof.npz predictions side by side, for the same training rows and the same
folds (anything else is refused), as the Kaggle write-ups stacked them:
- expressions: multinomial logistic regression on the concatenated class probabilities;
- keypoints: a ridge regression per coordinate (in pixels) on the members' predictions of it,
  fitted on the rows that have that coordinate: the second place's stacked linear model, per target.
Its own score is cross-validated on the OOF rows with the members' folds, beside each member's
pooled out-of-fold score and the plain average's. The fitted stacker (stacker.joblib, saved with
joblib as scikit-learn documents) is then applied to the members' test predictions.

The stack's folder, data/runs/<slug>/stack-<hash>/, is a run like the others: stack.json (its
members and stacker), predictor.json, params.json, metrics.json, cv.json and oof.npz (its own
cross-validated predictions), predictions.npz and test_metrics.json (for expressions with the test
scores of each member and of their plain average beside its own), so that `submission`, `runs` and
`report` read it as any run.
"""
import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import PredefinedSplit, cross_val_predict

from pipeline.core.competitions import KEYPOINTS, VALIDATION_METRIC
from pipeline.core.errors import PipelineError
from pipeline.core.fileio import atomic_path, load_arrays, save_arrays, write_json
from pipeline.core.layout import (ARRAYS, CROSS_VALIDATION, METRICS, OUT_OF_FOLD, PARAMS, PREDICTIONS, PREDICTOR,
                                  STACK, STACKER, TEST_METRICS)
from pipeline.inference.predict import expression_test_metrics
from pipeline.training.evaluate import score

RIDGE_ALPHA = 1.0          # on pixel coordinates from a few members: mild shrinkage towards the average
LOGISTIC_C = 1.0


def check_members(members):
    """Refuse, in one line, members that are not cross-validated or whose folds or rows differ."""
    if len(members) < 2:
        raise PipelineError("stack needs two runs or more (--runs A,B)")
    flat = [member.name for member in members if not member.is_cross_validated]
    if flat:
        raise PipelineError(f"run {flat[0]} is not cross-validated: stack takes runs trained with --folds K")
    first = members[0].out_of_fold()
    for member in members[1:]:
        other = member.out_of_fold()
        if len(other["fold"]) != len(first["fold"]) or not np.array_equal(other["row"], first["row"]):
            raise PipelineError(f"runs {members[0].name} and {member.name} predicted different training rows "
                                f"({len(first['row'])} and {len(other['row'])}): stack runs of the same data")
        if not np.array_equal(other["fold"], first["fold"]):
            raise PipelineError(f"runs {members[0].name} and {member.name} used different folds: stack runs "
                                "trained with the same --folds and --seed")
    if len({tuple(member.classes) for member in members}) > 1:
        raise PipelineError(f"runs {members[0].name} and {members[-1].name} predict different classes")


def features(members, key):
    """(n, members x outputs): the members' out-of-fold ("oof") or test ("test") predictions side by side."""
    if key == "oof":
        parts = [member.out_of_fold()["predictions"] for member in members]
    else:
        parts = [member.predictions()["keypoints" if member.task == "keypoints" else "probabilities"]
                 for member in members]
    return np.concatenate(parts, axis=1).astype(np.float64)


class KeypointStacker:
    """One ridge regression per coordinate on the members' predictions of that coordinate, each fitted
    on the rows where it is known: a weight per member and an offset, which is what a few members'
    biases and errors need (all 30 x members inputs per coordinate overfitted a 400-row test case:
    1.83 px against the plain average's 1.51)."""

    def __init__(self, alpha=RIDGE_ALPHA):
        self.alpha = alpha

    def _columns(self, x, j):
        return x[:, j::self.outputs_]   # member-major: member i's coordinate j is column i * outputs + j

    def fit(self, x, y):
        self.outputs_ = y.shape[1]
        self.models_ = []
        for j, column in enumerate(y.T):
            known = ~np.isnan(column)
            self.models_.append(Ridge(alpha=self.alpha).fit(self._columns(x, j)[known], column[known]))
        return self

    def predict(self, x):
        return np.stack([model.predict(self._columns(x, j)) for j, model in enumerate(self.models_)], axis=1)


def make_stacker(task):
    if task == KEYPOINTS.task:
        return KeypointStacker()
    return LogisticRegression(C=LOGISTIC_C, max_iter=2000)


def cross_validated(task, x, y, fold):
    """The stacker's own out-of-fold predictions, with the members' folds (a stacker never sees the
    rows it is scored on, and those rows' level-1 predictions came from models that never saw them)."""
    split = PredefinedSplit(fold)
    if task == KEYPOINTS.task:
        predicted = np.empty_like(y)
        for train, test in split.split():
            predicted[test] = make_stacker(task).fit(x[train], y[train]).predict(x[test])
        return predicted
    return cross_val_predict(make_stacker(task), x, y, cv=split, method="predict_proba")


def run(competition, processed, members, stack_dir):
    """Fit, score and apply the stacker of `members` (cross-validated RunDirs); fill `stack_dir`."""
    task = competition.task
    check_members(members)
    unpredicted = [member.name for member in members if not (member.path / PREDICTIONS).exists()]
    if unpredicted:
        raise PipelineError(f"run {unpredicted[0]} has no test predictions; run `python run.py predict --run "
                            f"{unpredicted[0]}` first")
    data = load_arrays(processed / ARRAYS)
    oof, test = features(members, "oof"), features(members, "test")
    fold = members[0].out_of_fold()["fold"]
    if task == KEYPOINTS.task:
        truth = members[0].scaling.inverse_transform(data["train_y"])
        target = truth
    else:
        truth = target = data["train_labels"]
    if len(truth) != len(fold):
        raise PipelineError(f"the processed data has {len(truth)} training rows, the runs' out-of-fold "
                            f"predictions {len(fold)}: stack runs trained on the data processed now")
    stacked_oof = cross_validated(task, oof, target, fold)
    stacker = make_stacker(task).fit(oof, target)
    predicted = stacker.predict(test) if task == KEYPOINTS.task else stacker.predict_proba(test)

    width = oof.shape[1] // len(members)
    each = {member.name: score(task, oof[:, i * width:(i + 1) * width], truth) for i, member in enumerate(members)}
    average = np.mean([oof[:, i * width:(i + 1) * width] for i in range(len(members))], axis=0)
    fold_scores = score(task, stacked_oof, truth, fold)
    metric = VALIDATION_METRIC[task][0]
    stacked = score(task, stacked_oof, truth)
    metrics = {metric: stacked, "members": each, "average": score(task, average, truth),
               "cv_mean": float(np.mean(fold_scores)), "cv_std": float(np.std(fold_scores)), "folds": len(fold_scores),
               "stacker": type(stacker).__name__, "train_rows": int(len(fold)),
               **{key: members[0].metrics[key] for key in ("baseline_rmse", "majority_accuracy", "majority_class")
                  if key in members[0].metrics}}

    stack_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(stack_dir / STACKER, suffix=".joblib") as tmp:
        joblib.dump(stacker, tmp)
    save_arrays(stack_dir / OUT_OF_FOLD, predictions=stacked_oof.astype(np.float32), fold=fold, row=np.arange(len(fold)))
    write_json(stack_dir / CROSS_VALIDATION, {"metric": metric, "folds": len(fold_scores), "fold_scores": fold_scores,
                                              "mean": metrics["cv_mean"], "std": metrics["cv_std"], "oof": stacked,
                                              "tta": "none"})
    if task == KEYPOINTS.task:
        save_arrays(stack_dir / PREDICTIONS, keypoints=np.clip(predicted, 0, KEYPOINTS.image_size).astype(np.float32),
                    image_ids=data["test_ids"])
        write_json(stack_dir / TEST_METRICS, {})
    else:
        probabilities = predicted.astype(np.float32)
        save_arrays(stack_dir / PREDICTIONS, probabilities=probabilities, labels=probabilities.argmax(1))
        average_test = np.mean(np.split(test, len(members), axis=1), axis=0)
        write_json(stack_dir / TEST_METRICS, {**expression_test_metrics(probabilities.argmax(1), data),
                                              "average": expression_test_metrics(average_test.argmax(1), data),
                                              "members": {member.name: member.test_metrics for member in members},
                                              "classes": list(members[0].classes), "tta": "none"})
    write_json(stack_dir / STACK, {"members": [member.name for member in members], "stacker": type(stacker).__name__})
    write_json(stack_dir / PREDICTOR, members[0].predictor)
    write_json(stack_dir / PARAMS, {"model": "stack", "recipe": "stack", "members": [m.name for m in members],
                                    "stacker": type(stacker).__name__, "tta": "none"})
    write_json(stack_dir / METRICS, metrics)
    return {metric: stacked, "average": metrics["average"], **{f"member {name}": s for name, s in each.items()}}
