"""The model and training code is Keras 3 only, so the whole chain also runs on JAX."""
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pipeline.core.competitions import KEYPOINTS

pytestmark = pytest.mark.slow   # trains, or runs the whole chain

RUN = str(Path(__file__).resolve().parents[2] / "run.py")


def test_tiny_run_under_jax(tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(
        [sys.executable, RUN, "--root", str(tmp_path), "all", "--sample-size", "0.05", "--epochs", "1",
         "--batch-size", "16"],
        env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "jax backend on CPU" in result.stdout
    written = pd.read_csv(tmp_path / "submissions" / f"{KEYPOINTS.slug}-latest.csv")
    assert len(written) > 0 and written.Location.between(0, 96).all()
