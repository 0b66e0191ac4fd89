"""Training and prediction on data sizes that leave odd remainders, in processes of their own.

On CPUs with AVX-512, TensorFlow's oneDNN kernels crashed mini_xception's training when the last
batch held 1, 5 or 31 rows of 32 (see pipeline/models/layers.py). A crash kills the process, so
each run here is a subprocess and the test asserts its exit code.
"""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
SLUG = "challenges-in-representation-learning-facial-expression-recognition-challenge"
pytestmark = pytest.mark.slow


def write_fer2013(folder, training_rows, test_rows=11, seed=0):
    """A fer2013.csv with random faces: `training_rows` Training rows, then PublicTest and PrivateTest."""
    rng = np.random.default_rng(seed)
    usages = ["Training"] * training_rows + ["PublicTest"] * test_rows + ["PrivateTest"] * test_rows
    lines = ["emotion,pixels,Usage"]
    for usage in usages:
        pixels = " ".join(map(str, rng.integers(0, 256, 48 * 48)))
        lines.append(f"{rng.integers(0, 7)},{pixels},{usage}")
    folder.mkdir(parents=True)
    (folder / "fer2013.csv").write_text("\n".join(lines) + "\n")


def run_py(root, *args):
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "--root", str(root), *args],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)


@pytest.mark.parametrize("training_rows", [353, 357, 383])   # 1, 5 and 31 rows left over at batch 32
def test_default_expressions_model_trains_on_any_number_of_rows(tmp_path, training_rows):
    write_fer2013(tmp_path / "data" / "raw" / SLUG, training_rows)
    done = run_py(tmp_path, "all", "--task", "expressions", "--epochs", "1", "--batch-size", "32")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"on {training_rows} rows, validating on 11" in done.stdout


def test_predictions_do_not_depend_on_the_batch_size(tmp_path):
    write_fer2013(tmp_path / "data" / "raw" / SLUG, 70)
    assert run_py(tmp_path, "all", "--task", "expressions", "--epochs", "1").returncode == 0
    runs = tmp_path / "data" / "runs" / SLUG
    predictions = runs / (runs / "latest").read_text().strip() / "predictions.npz"
    found = {}
    for batch_size in (1, 5, 7, 31, 256):
        done = run_py(tmp_path, "predict", "--task", "expressions", "--batch-size", str(batch_size), "--force")
        assert done.returncode == 0, done.stderr[-2000:]
        found[batch_size] = np.load(predictions)["probabilities"]
    assert found[1].shape == (22, 7)
    for batch_size, probabilities in found.items():
        np.testing.assert_allclose(probabilities, found[256], rtol=1e-4, atol=1e-6, err_msg=str(batch_size))
