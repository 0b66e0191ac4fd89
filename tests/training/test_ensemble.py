"""--ensemble K: K seeds of one recipe, each an ordinary cached run, averaged when predicting."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.core.competitions import KEYPOINTS
from pipeline.cli import cli

pytestmark = pytest.mark.slow   # trains three tiny runs


def invoke(root, *args):
    result = CliRunner().invoke(cli, ["--root", str(root), *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def test_an_ensemble_averages_its_members_predictions(project):
    quick = ["--task", "keypoints", "--epochs", "1", "--batch-size", "8", "--augment", "none", "--tta", "none"]
    invoke(project, "all", *quick, "--ensemble", "2")
    runs = project / "data" / "runs" / KEYPOINTS.slug
    name = (runs / "latest").read_text().strip()
    assert "-x2-" in name
    members = json.loads((runs / name / "ensemble.json").read_text())["members"]
    assert len(members) == 2 and len({json.loads((runs / m / "params.json").read_text())["seed"] for m in members}) == 2
    averaged = np.load(runs / name / "predictions.npz")["keypoints"]

    own = []
    for member in members:
        invoke(project, "predict", "--task", "keypoints", "--run", member, "--tta", "none")
        own.append(np.load(runs / member / "predictions.npz")["keypoints"])
    np.testing.assert_allclose(averaged, np.clip(np.mean(own, axis=0), 0, 96), rtol=1e-5, atol=1e-4)

    metrics = json.loads((runs / name / "metrics.json").read_text())
    assert set(metrics["members"]) == set(members) and "val_rmse_flip" in metrics

    again = invoke(project, "train", "--task", "keypoints", "--epochs", "1", "--batch-size", "8", "--augment", "none",
                   "--ensemble", "2")
    assert "cached" in again
