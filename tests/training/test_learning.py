"""The default models really learn the built-in sample: `run.py all` as a user runs it, seed 0."""
import json

import pytest
from click.testing import CliRunner

from pipeline.core.competitions import EXPRESSIONS, KEYPOINTS
from pipeline.cli import cli


pytestmark = pytest.mark.slow   # trains, or runs the whole chain

@pytest.fixture(scope="module")
def metrics(tmp_path_factory):
    root = tmp_path_factory.mktemp("learning")
    result = CliRunner().invoke(cli, ["--root", str(root), "all", "--seed", "0"])
    assert result.exit_code == 0, result.output[-3000:] + repr(result.exception)

    def read(competition):
        runs = root / "data" / "runs" / competition.slug
        return json.loads((runs / (runs / "latest").read_text().strip() / "metrics.json").read_text())

    return {"keypoints": read(KEYPOINTS), "expressions": read(EXPRESSIONS)}


def test_keypoints_rmse_at_least_40_percent_below_the_mean_baseline(metrics):
    keypoints = metrics["keypoints"]
    assert keypoints["val_rmse"] <= 0.6 * keypoints["baseline_rmse"], keypoints


def test_expressions_accuracy_at_least_twice_the_majority_class(metrics):
    expressions = metrics["expressions"]
    assert expressions["val_accuracy"] >= 2 * expressions["majority_accuracy"], expressions
