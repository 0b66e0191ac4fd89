"""Shared fixtures: tiny generated competitions in the exact Kaggle formats."""
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))   # test support (kaggle_server) from any test folder

# The suite runs in the environment a user gets by default, whatever their shell exports: every
# variable the pipeline reads is cleared before the pipeline is imported (a test that needs one sets
# it), Keras's backend is the default one even if ~/.keras/keras.json names another, and HOME is an
# empty folder, so that no Kaggle credentials or client settings of the user's are found.
USER_SETTINGS = ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS", "TF_CONFIG", "KERAS_BACKEND", "KERAS_HOME",
                 "FACES_ROOT", "FACES_LOCK_WAIT", "XDG_CONFIG_HOME", "VERBOSE", "VERBOSE_OUTPUT",
                 "TF_NUM_INTEROP_THREADS", "TF_NUM_INTRAOP_THREADS")
for name in list(os.environ):
    if name in USER_SETTINGS or name.startswith("KAGGLE_"):
        del os.environ[name]
os.environ["KERAS_BACKEND"] = "tensorflow"
# TensorFlow's own thread layout in every test (0: one thread per core), so that no training moves to
# a fresh process for a layout of its own (core/threads.py); tests/core/test_threads.py unsets them.
os.environ["TF_NUM_INTEROP_THREADS"] = os.environ["TF_NUM_INTRAOP_THREADS"] = "0"
os.environ["HOME"] = tempfile.mkdtemp(prefix="faces-tests-home-")

from pipeline.data import sample  # noqa: E402
from pipeline.core.competitions import EXPRESSIONS, KEYPOINTS  # noqa: E402

TINY = sample.SampleSizes(keypoints_train=60, keypoints_test=12, expressions=150)


@pytest.fixture
def keypoints_raw(tmp_path):
    folder = tmp_path / "raw-keypoints"
    folder.mkdir()
    sample.write_keypoints(folder, np.random.default_rng(1), TINY)
    return folder


@pytest.fixture
def expressions_raw(tmp_path):
    folder = tmp_path / "raw-expressions"
    folder.mkdir()
    sample.write_expressions(folder, np.random.default_rng(2), TINY)
    return folder


@pytest.fixture
def competitions():
    return KEYPOINTS, EXPRESSIONS


@pytest.fixture
def project(tmp_path):
    """A project root with a tiny keypoints competition in data/raw/, as `run.py --root` expects."""
    raw = tmp_path / "data" / "raw" / KEYPOINTS.slug
    raw.mkdir(parents=True)
    sample.write_sample(KEYPOINTS, raw, seed=3, sizes=sample.SampleSizes(keypoints_train=20, keypoints_test=6))
    return tmp_path


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory):
    """A project root where `run.py all` has trained one epoch on tiny samples of both competitions
    (shared by the tests of the commands that use finished runs: report, export). Do not modify it."""
    from click.testing import CliRunner

    from pipeline.cli import cli

    root = tmp_path_factory.mktemp("trained")
    sizes = sample.SampleSizes(keypoints_train=40, keypoints_test=6, expressions=120)
    for competition in (KEYPOINTS, EXPRESSIONS):
        raw = root / "data" / "raw" / competition.slug
        raw.mkdir(parents=True)
        sample.write_sample(competition, raw, seed=5, sizes=sizes)
    for task, model in (("keypoints", "kaggle_cnn"), ("expressions", "compact_vgg")):
        result = CliRunner().invoke(cli, ["--root", str(root), "all", "--task", task, "--model", model,
                                          "--epochs", "1", "--batch-size", "8"])
        assert result.exit_code == 0, result.output + repr(result.exception)
    return root
