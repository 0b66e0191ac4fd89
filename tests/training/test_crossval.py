"""--folds K: one cached run per fold, out-of-fold predictions from the model that never saw the row,
the CV score, and the folds' average for the test images."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.core.competitions import EXPRESSIONS, KEYPOINTS
from pipeline.core.fileio import load_arrays
from pipeline.core.recipes import RECIPES
from pipeline.data.splits import fold_of_rows, load_training_data
from pipeline.inference.rundir import RunDir
from pipeline.inference.tta import predict_keypoints, predict_probabilities

pytestmark = pytest.mark.slow   # trains a few tiny runs

RUN = str(Path(__file__).resolve().parents[2] / "run.py")
QUICK = ["--epochs", "2", "--batch-size", "16"]


def invoke(root, *args):
    result = CliRunner().invoke(cli, ["--root", str(root), *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def latest(root, competition):
    runs = root / "data" / "runs" / competition.slug
    return RunDir(runs / (runs / "latest").read_text().strip())


def test_expression_folds_predict_only_rows_they_never_trained_on(tmp_path, monkeypatch):
    output = invoke(tmp_path, "all", "--task", "expressions", "--sample-size", "0.2", *QUICK, "--folds", "3")
    cv = latest(tmp_path, EXPRESSIONS)
    assert "-cv3-" in cv.name and "3-fold CV" in output
    summary = cv.cross_validation
    assert summary["metric"] == "val_accuracy" and summary["folds"] == 3 and len(summary["fold_scores"]) == 3
    assert summary["mean"] == pytest.approx(np.mean(summary["fold_scores"]))
    assert summary["std"] == pytest.approx(np.std(summary["fold_scores"]))
    assert cv.score() == pytest.approx(summary["mean"])   # --run best ranks it by its CV mean

    processed = tmp_path / "data" / "processed" / EXPRESSIONS.slug
    data = load_arrays(processed / "arrays.npz")
    oof = cv.out_of_fold()
    n = len(data["train_x"])
    assert oof["predictions"].shape == (n, 7) and not np.isnan(oof["predictions"]).any()
    np.testing.assert_array_equal(oof["row"], np.arange(n))
    np.testing.assert_array_equal(oof["fold"], fold_of_rows("expressions", data, 3, seed=0))
    assert summary["oof"] == pytest.approx(np.mean(oof["predictions"].argmax(1) == data["train_labels"]))

    for k, fold in enumerate(cv.members):
        assert fold.params["fold"] == k and fold.params["folds"] == 3
        # the model of fold k trained on exactly the rows outside fold k ...
        trained_on = load_training_data("expressions", processed, fold.params)
        np.testing.assert_array_equal(trained_on.train_x, data["train_x"][oof["fold"] != k])
        # ... and made every out-of-fold prediction of the rows inside it
        held_out = oof["fold"] == k
        expected = predict_probabilities(fold.load_models(), data["train_x"][held_out], 16, cv.tta)
        np.testing.assert_allclose(oof["predictions"][held_out], expected, rtol=1e-5, atol=1e-6)
        assert summary["fold_scores"][k] == fold.score()

    # the test images are predicted by the folds' average; PrivateTest is scored, never used
    averaged = predict_probabilities(cv.load_models(), data["test_x"], 256, cv.tta)
    np.testing.assert_allclose(cv.predictions()["probabilities"], averaged, rtol=1e-5, atol=1e-6)
    assert "private_test_accuracy" in cv.test_metrics
    assert (tmp_path / "submissions" / f"{EXPRESSIONS.slug}-{cv.name}.csv").exists()

    table = invoke(tmp_path, "runs", "--task", "expressions")
    assert f"{summary['mean']:.4f}±{summary['std']:.4f}" in table and "fold 2/3" in table
    again = invoke(tmp_path, "train", "--task", "expressions", *QUICK, "--folds", "3")
    assert "training compact_vgg" not in again and f"cached    0.0s  run={cv.name}" in again   # nothing retrains

    # a recipe whose TTA changed predicts the held-out rows again under it, and retrains nothing
    monkeypatch.setitem(RECIPES["fast"]["expressions"], "tta", "none")
    changed = invoke(tmp_path, "train", "--task", "expressions", *QUICK, "--folds", "3")
    assert "training compact_vgg" not in changed
    line = next(line for line in changed.splitlines() if f"run={cv.name}" in line)
    assert line.split()[:3] == ["expressions", "train", "ran"]
    assert RunDir(cv.path).cross_validation["tta"] == "none"


def test_keypoint_folds_keep_the_annotation_schemes_apart_and_predict_pixels(project):
    invoke(project, "all", "--task", "keypoints", "--epochs", "1", "--batch-size", "8", "--augment", "none",
           "--folds", "2")
    cv = latest(project, KEYPOINTS)
    processed = project / "data" / "processed" / KEYPOINTS.slug
    data = load_arrays(processed / "arrays.npz")
    oof = cv.out_of_fold()
    assert oof["predictions"].shape == (len(data["train_x"]), 30) and cv.cross_validation["metric"] == "val_rmse"
    for k, fold in enumerate(cv.members):
        held_out = oof["fold"] == k
        expected = predict_keypoints(fold.load_models(), data["train_x"][held_out], fold.scaling, 8, cv.tta)
        np.testing.assert_allclose(oof["predictions"][held_out], expected, rtol=1e-4, atol=1e-3)
    truth = cv.scaling.inverse_transform(data["train_y"])
    present = ~np.isnan(truth)
    pooled = np.sqrt(np.mean((oof["predictions"] - truth)[present] ** 2))
    assert cv.cross_validation["oof"] == pytest.approx(pooled, rel=1e-5)


def test_folds_refuse_an_ensemble_in_one_line(project):
    result = CliRunner().invoke(cli, ["--root", str(project), "train", "--task", "keypoints", "--folds", "2",
                                      "--ensemble", "2"])
    assert result.exit_code == 1 and "--folds 2" in result.output and "Traceback" not in result.output


def run(root, *args):
    return subprocess.run([sys.executable, RUN, "--root", str(root), *args], capture_output=True, text=True,
                          timeout=900)


def test_an_interrupted_cross_validation_resumes_to_where_an_unbroken_one_ends(tmp_path):
    command = ["all", "--task", "expressions", "--sample-size", "0.06", "--epochs", "4", "--batch-size", "16",
               "--folds", "2"]
    unbroken = tmp_path / "unbroken"
    assert run(unbroken, *command).returncode == 0

    broken = tmp_path / "broken"
    process = subprocess.Popen([sys.executable, RUN, "--root", str(broken), *command],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs = broken / "data" / "runs" / EXPRESSIONS.slug
    deadline = time.monotonic() + 600
    # the first fold finished and the second has saved an epoch
    while not (list(runs.glob("*/metrics.json")) and list(runs.glob("*/backup/state.json"))):
        assert process.poll() is None and time.monotonic() < deadline, "training ended before it was interrupted"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130 and "--resume" in stderr

    resumed = run(broken, *command, "--resume")
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert "resuming" in resumed.stdout and resumed.stdout.count("cached") >= 1   # fold 1 is not trained again
    ends = [latest(root, EXPRESSIONS) for root in (unbroken, broken)]
    assert ends[0].name == ends[1].name
    assert ends[0].cross_validation["fold_scores"] == ends[1].cross_validation["fold_scores"]
    np.testing.assert_allclose(ends[0].out_of_fold()["predictions"], ends[1].out_of_fold()["predictions"],
                               rtol=1e-4, atol=1e-5)
