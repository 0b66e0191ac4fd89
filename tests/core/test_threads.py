"""core/threads.py: each training's TensorFlow thread layout, and a fresh process where this one's differs."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.core import threads
from pipeline.core.errors import PipelineError
from pipeline.models import get_spec

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def unpinned(monkeypatch):
    for name in threads.USER_SETTINGS:   # conftest pins TensorFlow's default for the rest of the suite
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("cores, expected", [(2, (2, 1)), (1, (2, 1)), (8, (2, 4))])
def test_small_operation_models_in_bfloat16_run_two_operations_side_by_side(unpinned, monkeypatch, cores, expected):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert threads.layout_for("heatmap_keypoints", "mixed") == expected
    assert threads.layout_for("mini_xception", "mixed") == expected


def test_other_models_precisions_and_settings_keep_tensorflows_own(unpinned, monkeypatch):
    assert threads.layout_for("compact_vgg_wide", "mixed") == threads.DEFAULT
    assert threads.layout_for("densenet", "mixed") == threads.DEFAULT
    assert threads.layout_for("heatmap_keypoints", "float32") == threads.DEFAULT
    assert threads.layout_for("heatmap_keypoints", "mixed", strategy="mirrored") is None
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "3")   # the user's choice stands
    assert threads.layout_for("heatmap_keypoints", "mixed") is None


def test_threads_the_user_gave_tensorflow_are_the_ones_reported(monkeypatch):
    """tf.config does not report TF_NUM_*_THREADS, which TensorFlow obeys: params.json and bench cpu would
    say "default" otherwise."""
    assert threads.running() == threads.DEFAULT   # conftest's "0": TensorFlow's own
    monkeypatch.setenv("TF_NUM_INTEROP_THREADS", "2")
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "3")
    assert threads.describe(threads.running()) == "2 inter-op x 3 intra-op threads"
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "many")   # not a number: TensorFlow's default
    assert threads.running() == (2, 0)


def test_a_fresh_process_runs_with_the_layout_and_answers_or_raises_here():
    assert threads.call((2, 1), threads.running) == (2, 1)
    with pytest.raises(PipelineError, match="unknown model 'nope'"):
        threads.call(threads.DEFAULT, get_spec, "nope")   # raised there, said here
    with pytest.raises(RuntimeError, match="invalid literal"):
        threads.call(threads.DEFAULT, int, "x")


@pytest.mark.slow   # two tiny trainings and a process of their own
def test_a_second_training_that_wants_other_threads_runs_in_a_fresh_process(tmp_path):
    """run.py all for both tasks in one process: heatmap_keypoints in mixed precision first (one core
    per operation), then compact_vgg_wide, which wants TensorFlow's default and gets it in a fresh
    process; each run's params.json says which threads it had."""
    env = {k: v for k, v in os.environ.items() if k not in threads.USER_SETTINGS}
    done = subprocess.run([sys.executable, str(ROOT / "run.py"), "--root", str(tmp_path), "all", "--sample-size", "0.1",
                           "--epochs", "1", "--batch-size", "16", "--augment", "none", "--precision", "mixed"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "training compact_vgg_wide in a fresh process" in done.stdout
    assert "training heatmap_keypoints in a fresh process" not in done.stdout
    devices = {}
    for params in tmp_path.glob("data/runs/*/*/params.json"):
        found = json.loads(params.read_text())
        devices[found["model"]] = found["device"]
    inter, intra = 2, max(1, len(os.sched_getaffinity(0)) // 2)
    assert devices["heatmap_keypoints"].endswith(f"{inter} inter-op x {intra} intra-op threads")
    assert devices["compact_vgg_wide"].endswith("TensorFlow's default threads")
    assert (tmp_path / "submissions").is_dir() and len(list((tmp_path / "submissions").glob("*-latest.csv"))) == 2
