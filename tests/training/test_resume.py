"""Ctrl-C during training saves the state at the end of the epoch; --resume ends where an unbroken run ends."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.competitions import EXPRESSIONS

pytestmark = pytest.mark.slow   # trains, or runs the whole chain

RUN = str(Path(__file__).resolve().parents[2] / "run.py")
OPTIONS = ["--task", "expressions", "--epochs", "8", "--patience", "20", "--batch-size", "16"]
TRAIN = ["train", *OPTIONS]


def run(root, *args, **kwargs):
    return subprocess.run([sys.executable, RUN, "--root", str(root), *args], capture_output=True, text=True,
                          timeout=600, **kwargs)


def prepared(root):
    for stage in (["download", "--sample-size", "0.06"], ["clean"], ["scale"]):
        assert run(root, *stage, "--task", "expressions").returncode == 0
    return root


def run_folder(root):
    runs = root / "data" / "runs" / EXPRESSIONS.slug
    return runs / (runs / "latest").read_text().strip()


def final_weights(root):
    from pipeline.models import load_model   # registers the custom layers first

    model = load_model(run_folder(root) / "model.keras", compile=False)
    return model.get_weights()


def resume_after_interrupting(root, command):
    """Run `command` until its first epoch is saved, interrupt it with SIGINT, check what it left, then
    run it again with --resume: it must continue after the saved epoch and succeed."""
    process = subprocess.Popen([sys.executable, RUN, "--root", str(root), *command],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    backup = root / "data" / "runs" / EXPRESSIONS.slug
    deadline = time.monotonic() + 300
    while not list(backup.glob("*/backup/state.json")):   # the first epoch has been saved
        assert process.poll() is None and time.monotonic() < deadline, "training ended before it was interrupted"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stdout[-2000:] + stderr[-2000:]
    assert "Continue with the same command plus --resume" in stderr and "Traceback" not in stderr
    state_file = next(backup.glob("*/backup/state.json"))
    state = json.loads(state_file.read_text())
    assert 1 <= state["epoch"] < 8
    assert not (state_file.parents[1] / "model.keras").exists()   # an unfinished run publishes no model
    assert not (backup / "latest").exists()

    resumed = run(root, *command, "--resume")
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert f"after epoch {state['epoch']}" in resumed.stdout
    assert f"Epoch {state['epoch'] + 1}/8" in resumed.stdout and "Epoch 1/8" not in resumed.stdout
    return resumed


@pytest.mark.parametrize("augment_on", ["host", "device"])   # device: the random layers' state is saved too
def test_interrupted_training_resumes_to_the_same_result(tmp_path, augment_on):
    train = [*TRAIN, "--augment-on", augment_on]
    unbroken = prepared(tmp_path / "unbroken")
    assert run(unbroken, *train).returncode == 0

    broken = prepared(tmp_path / "broken")
    resume_after_interrupting(broken, train)

    metrics = [json.loads((run_folder(root) / "metrics.json").read_text()) for root in (unbroken, broken)]
    assert metrics[0]["epochs"] == metrics[1]["epochs"] == 8
    assert metrics[0]["val_accuracy"] == metrics[1]["val_accuracy"]
    for a, b in zip(final_weights(unbroken), final_weights(broken)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_an_interrupted_all_resumes_with_the_same_command(tmp_path):
    """The interruption message says "the same command plus --resume"; for `all` that must work too."""
    command = ["all", "--sample-size", "0.06", *OPTIONS]
    resumed = resume_after_interrupting(tmp_path, command)
    assert "submission" in resumed.stdout
    assert (tmp_path / "submissions" / f"{EXPRESSIONS.slug}-latest.csv").exists()
