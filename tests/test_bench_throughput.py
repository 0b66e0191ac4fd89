"""python -m pipeline.bench train runs and prints its figures (it is timed only when run by hand)."""
import re

import pytest
from click.testing import CliRunner

pytest.importorskip("keras")

from pipeline.bench import cli, throughput  # noqa: E402,F401  throughput registers the command

pytestmark = pytest.mark.slow


def test_train_benchmark_prints_both_ways_and_the_efficiency():
    result = CliRunner().invoke(cli, ["train", "--task", "expressions", "--rows", "128", "--epochs", "1", "--no-jax"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert re.search(r"expressions\s+compact_vgg\s+batch\s+64: input path\s+\d+ img/s, in memory\s+\d+ img/s",
                     result.output)
    efficiency = float(re.search(r"input_efficiency_expressions=([0-9.]+)", result.output).group(1))
    assert efficiency > 0
