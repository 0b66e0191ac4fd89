"""The trained runs of a competition, read from their folders (no Keras): for `run.py runs` and
`--run best`. A run's validation score is its `metrics.json`'s, with the TTA of its recipe.

Expressions runs trained on FER2013 and on FERPlus labels share a folder but not a scale: FERPlus
accuracy runs some 20 points higher, so they are listed and ranked apart, by `labels`."""
import datetime
from dataclasses import dataclass
from pathlib import Path

from .competitions import VALIDATION_METRIC, label_set
from .fileio import read_json


@dataclass(frozen=True)
class Run:
    name: str
    folder: Path
    params: dict
    metrics: dict
    test: dict        # test_metrics.json, {} before predict
    finished: datetime.datetime
    labels: str       # "fer2013" or "ferplus" for expressions (from predictor.json's classes), "" for keypoints

    def score(self, task):
        """The validation score under the run's own test-time augmentation."""
        from .recipes import run_tta

        tta = run_tta(task, self.params)
        metric = VALIDATION_METRIC[task][0]
        return self.metrics.get(metric if tta == "none" else f"{metric}_{tta}", self.metrics[metric])


def listed(runs_folder, task, labels=None):
    """Every complete run under `runs_folder` (only those trained on `labels`, when given), best
    validation score first."""
    found = []
    for folder in sorted(Path(runs_folder).glob("*/")):
        metrics_file = folder / "metrics.json"
        if not metrics_file.exists():
            continue
        test_file = folder / "test_metrics.json"
        classes = read_json(folder / "predictor.json").get("classes")
        found.append(Run(folder.name, folder, read_json(folder / "params.json"), read_json(metrics_file),
                         read_json(test_file) if test_file.exists() else {},
                         datetime.datetime.fromtimestamp(metrics_file.stat().st_mtime),
                         label_set(classes) if task == "expressions" and classes else ""))
    if labels is not None:
        found = [run for run in found if run.labels == labels]
    higher_is_better = VALIDATION_METRIC[task][1] == "max"
    return sorted(found, key=lambda run: run.score(task), reverse=higher_is_better)


def table(runs, task):
    """Lines of a plain-text table of `runs`."""
    unit = "RMSE px" if task == "keypoints" else "accuracy"
    header = f"{'run':<34} {'recipe':<9} {'options':<32} {'epochs':>6} {'val ' + unit:>12}"
    if task == "expressions":
        header += f" {'public':>7} {'private':>7}"
    header += f" {'train min':>9}  finished"
    lines = [header, "-" * len(header)]
    for run in runs:
        p, m = run.params, run.metrics
        options = f"{p.get('schedule')} lr {p.get('lr')} {p.get('augment')} b{p.get('batch_size')}"
        if p.get("ensemble", 1) > 1:
            options = f"x{p['ensemble']} " + options
        line = (f"{run.name:<34} {p.get('recipe', '-'):<9} {options:<32} {m.get('epochs', '-'):>6} "
                f"{run.score(task):>12.4f}")
        if task == "expressions":
            line += "".join(f" {run.test[k]:>7.4f}" if k in run.test else f" {'-':>7}"
                            for k in ("public_test_accuracy", "private_test_accuracy"))
        minutes = m.get("train_seconds")
        line += f" {minutes / 60 if minutes else 0:>9.1f}  {run.finished:%Y-%m-%d %H:%M}"
        lines.append(line)
    return lines
