"""run.py stack: a level-2 model on cross-validated runs' out-of-fold predictions."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.core.competitions import EXPRESSIONS, EXPRESSIONS_HEADER
from pipeline.inference.rundir import RunDir
from pipeline.training import stack

ROOT = Path(__file__).resolve().parents[2]


def test_the_keypoint_stacker_learns_each_members_bias_and_skips_missing_coordinates():
    rng = np.random.default_rng(0)
    truth = rng.uniform(10, 86, (400, 30))
    truth[rng.random(400) < 0.6, 8:] = np.nan          # most rows: 4 keypoints
    filled = np.nan_to_num(truth, nan=48.0)
    members = [filled + 3 + rng.normal(0, 2, truth.shape), filled + 1 + rng.normal(0, 3, truth.shape)]
    x = np.concatenate(members, axis=1)
    fold = np.arange(400) % 4
    stacked = stack.cross_validated("keypoints", x, truth, fold)
    assert stacked.shape == truth.shape and not np.isnan(stacked).any()
    each = [stack.score("keypoints", member, truth) for member in members]
    average = stack.score("keypoints", np.mean(members, axis=0), truth)
    assert stack.score("keypoints", stacked, truth) < min(min(each), average) - 0.5   # the offsets learn the biases
    assert len(stack.score("keypoints", stacked, truth, fold)) == 4


def invoke(root, *args, code=0):
    result = CliRunner().invoke(cli, ["--root", str(root), *args])
    assert result.exit_code == code, result.output + repr(result.exception)
    return result.output


def latest(root):
    runs = root / "data" / "runs" / EXPRESSIONS.slug
    return RunDir(runs / (runs / "latest").read_text().strip())


@pytest.mark.slow   # trains two cross-validated runs
def test_a_stack_of_two_cross_validated_runs_submits_and_its_stacker_reloads_in_a_fresh_process(tmp_path, monkeypatch):
    quick = ["--task", "expressions", "--epochs", "1", "--batch-size", "16"]
    invoke(tmp_path, "all", *quick, "--sample-size", "0.15", "--folds", "2")
    first = latest(tmp_path)
    invoke(tmp_path, "all", *quick, "--model", "mini_xception", "--folds", "2")
    second = latest(tmp_path)

    output = invoke(tmp_path, "stack", "--task", "expressions", "--runs", f"{first.name},{second.name}")
    stacked = latest(tmp_path)
    assert stacked.is_stack and "stack-" in stacked.name and f"member {first.name}" in output
    metrics = stacked.metrics
    assert set(metrics["members"]) == {first.name, second.name} and "average" in metrics
    assert metrics["members"][first.name] == pytest.approx(first.cross_validation["oof"])
    assert stacked.score() == metrics["val_accuracy"] and "private_test_accuracy" in stacked.test_metrics
    assert stacked.cross_validation["folds"] == 2
    assert stacked.test_metrics["members"][second.name] == second.test_metrics

    invoke(tmp_path, "submission", "--task", "expressions")
    lines = (tmp_path / "submissions" / f"{EXPRESSIONS.slug}-{stacked.name}.csv").read_text().splitlines()
    assert lines[0] == EXPRESSIONS_HEADER and len(lines) - 1 == len(stacked.predictions()["labels"])
    assert "stack of 2, LogisticRegression" in invoke(tmp_path, "runs", "--task", "expressions")
    invoke(tmp_path, "report", "--task", "expressions")
    page = (tmp_path / "reports" / EXPRESSIONS.slug / stacked.name / "index.html").read_text()
    assert f"member {first.name}" in page and "their plain average" in page and "<th>PrivateTest</th>" in page

    script = ("import sys, joblib, numpy as np\n"
              "from pipeline.inference.rundir import RunDir\n"
              "from pipeline.training.stack import features\n"
              "members = [RunDir(p) for p in sys.argv[2:]]\n"
              "model = joblib.load(sys.argv[1])\n"
              "np.save(sys.argv[1] + '.npy', model.predict_proba(features(members, 'test')))\n")
    path = stacked.path / "stacker.joblib"
    done = subprocess.run([sys.executable, "-c", script, str(path), str(first.path), str(second.path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_allclose(np.load(str(path) + ".npy"), stacked.predictions()["probabilities"], rtol=1e-5, atol=1e-6)

    # runs that are not cross-validated, or whose folds differ, are refused in one line
    plain = invoke(tmp_path, "train", *quick).split("run=")[1].split(",")[0]
    refused = invoke(tmp_path, "stack", "--task", "expressions", "--runs", f"{first.name},{plain}", code=1)
    assert "not cross-validated" in refused and "Traceback" not in refused
    invoke(tmp_path, "train", *quick, "--folds", "3")
    three = latest(tmp_path).name
    refused = invoke(tmp_path, "stack", "--task", "expressions", "--runs", f"{first.name},{three}", code=1)
    assert "different folds" in refused and refused.count("\n") == 1

    # the second member made always right on the test rows (as read by the stack): so is the plain average
    labels = np.load(tmp_path / "data" / "processed" / EXPRESSIONS.slug / "arrays.npz")["test_labels"].clip(0)
    read = RunDir.predictions
    monkeypatch.setattr(RunDir, "predictions", lambda run: {"probabilities": np.eye(7)[labels], "labels": labels}
                        if run.path == second.path else read(run))
    invoke(tmp_path, "stack", "--task", "expressions", "--runs", f"{first.name},{second.name}", "--force")
    test = latest(tmp_path).test_metrics
    assert test["average"]["private_test_accuracy"] == 1.0 > test["members"][first.name]["private_test_accuracy"]
