"""The parse benchmark, at a tiny size: it writes both layouts, checks the arrays and prints its lines."""
from click.testing import CliRunner

from pipeline.bench import cli, parse  # noqa: F401  parse registers its command


def test_parse_bench_prints_its_measurements():
    result = CliRunner().invoke(cli, ["parse", "--rows", "3", "--repeats", "1"])
    assert result.exit_code == 0, result.output
    assert result.output.count("identical arrays") == 2
    for task in ("keypoints", "expressions"):
        for key in ("parse_speedup", "file_speedup", "parse_peak_memory_mb", "reference_parse_peak_memory_mb"):
            assert f"\n{key}_{task}=" in result.output
