"""The trained runs of a competition, read from their folders (no Keras): for `run.py runs` and
`--run best`. A run's validation score is its `metrics.json`'s, with the TTA of its recipe; a
cross-validated run's is its folds' mean (shown ± their standard deviation).

Expressions runs trained on FER2013 and on FERPlus labels share a folder but not a scale: FERPlus
accuracy runs some 20 points higher, so they are listed and ranked apart, by `labels`."""
from pathlib import Path

from pipeline.core.competitions import VALIDATION_METRIC
from pipeline.inference.rundir import RunDir


def listed(runs_folder, task, labels=None, comparable=False):
    """Every complete run (a RunDir) under `runs_folder` (only those trained on `labels`, when given),
    best validation score first. `comparable`: without the keypoint specialists' members, whose
    scores cover only their own rows or keypoints (`--run best` chooses among the others)."""
    found = [run for run in map(RunDir, sorted(Path(runs_folder).glob("*/"))) if run.complete]
    if comparable:
        found = [run for run in found if "specialist" not in run.params]
    if labels is not None:
        found = [run for run in found if run.labels == labels]
    higher_is_better = VALIDATION_METRIC[task][1] == "max"
    return sorted(found, key=RunDir.score, reverse=higher_is_better)


def tables(runs_folder, task):
    """The lines `run.py runs` prints for one competition: a table per label set."""
    found = listed(runs_folder, task)
    if not found:
        return [f"{task} (0 runs):", "  none yet: python run.py train"]
    lines = []
    for labels in sorted({run.labels for run in found}):   # FER2013 and FERPlus runs apart
        group = [run for run in found if run.labels == labels]
        lines.append(f"{task}{f', {labels} labels' if labels else ''} ({len(group)} runs):")
        lines += table(group, task)
    return lines


def table(runs, task):
    """Lines of a plain-text table of `runs`."""
    unit = "RMSE px" if task == "keypoints" else "accuracy"
    header = f"{'run':<34} {'recipe':<9} {'options':<40} {'epochs':>6} {'val ' + unit:>15}"
    if task == "expressions":   # unseen: the test faces without a pixel copy in Training
        header += f" {'public':>7} {'private':>7} {'unseen':>7}"
    header += f" {'train min':>9}  finished"
    lines = [header, "-" * len(header)]
    for run in runs:
        p, m, test = run.params, run.metrics, run.test_metrics
        options = f"{p.get('schedule')} lr {p.get('lr')} {p.get('augment')} b{p.get('batch_size')}"
        if p.get("ensemble", 1) > 1:
            options = f"x{p['ensemble']} " + options
        score = f"{run.score():.4f}"
        if run.is_stack:
            options = f"stack of {len(p['members'])}, {p['stacker']}"
        if run.is_cross_validated:   # the folds' mean, ± their standard deviation
            options = f"cv{p['folds']} " + options if "folds" in p else options
            score += f"±{run.cross_validation['std']:.4f}"
        elif "fold" in p:
            options = f"fold {p['fold'] + 1}/{p['folds']} " + options
        if run.is_specialists:
            options = "specialists " + options
        elif "specialist" in p:   # a member: scored on its own rows and keypoints only
            options = f"{p['specialist']} only " + options
        line = (f"{run.name:<34} {p.get('recipe', '-'):<9} {options:<40} {m.get('epochs', '-'):>6} "
                f"{score:>15}")
        if task == "expressions":
            line += "".join(f" {test[k]:>7.4f}" if k in test else f" {'-':>7}"
                            for k in ("public_test_accuracy", "private_test_accuracy",
                                      "private_test_accuracy_unseen"))
        minutes = m.get("train_seconds")
        line += f" {minutes / 60 if minutes else 0:>9.1f}  {run.finished:%Y-%m-%d %H:%M}"
        lines.append(line)
    return lines
