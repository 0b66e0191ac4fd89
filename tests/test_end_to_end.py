"""`run.py all` through the click entry point, on a tiny built-in sample in a temporary folder."""
import time

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from pipeline.core import recipes
from pipeline.core.competitions import EXPRESSIONS, KEYPOINTS
from pipeline.cli import cli

pytestmark = pytest.mark.slow   # trains, or runs the whole chain

QUICK = ["--sample-size", "0.1", "--epochs", "2", "--batch-size", "16", "--augment", "none"]


def run_all(root, *extra):
    result = CliRunner().invoke(cli, ["--root", str(root), "all", *QUICK, *extra])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def statuses(output):
    """{(task, stage): status} from the one-line stage reports."""
    found = {}
    for line in output.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] in ("keypoints", "expressions") and words[2] in ("ran", "cached"):
            found[(words[0], words[1])] = words[2]
    return found


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    return root, run_all(root)


def test_all_writes_valid_submissions(first_run):
    root, output = first_run
    assert "BUILT-IN SAMPLE" in output
    lookup = pd.read_csv(root / "data" / "raw" / KEYPOINTS.slug / "IdLookupTable.csv")
    keypoints = pd.read_csv(root / "submissions" / f"{KEYPOINTS.slug}-latest.csv")
    assert list(keypoints.columns) == ["RowId", "Location"]
    assert keypoints.RowId.tolist() == lookup.RowId.tolist()
    assert keypoints.Location.between(0, 96).all() and keypoints.Location.notna().all()

    fer = pd.read_csv(root / "data" / "raw" / EXPRESSIONS.slug / "fer2013.csv")
    expressions = pd.read_csv(root / "submissions" / f"{EXPRESSIONS.slug}-latest.csv")
    assert list(expressions.columns) == ["Emotion"]
    assert len(expressions) == (fer.Usage != "Training").sum()
    assert expressions.Emotion.isin(range(7)).all()


def test_run_folder_holds_model_history_curve_and_metrics(first_run):
    root, _ = first_run
    for competition, metric, baseline in ((KEYPOINTS, "val_rmse", "baseline_rmse"),
                                          (EXPRESSIONS, "val_accuracy", "majority_accuracy")):
        runs = root / "data" / "runs" / competition.slug
        run_dir = runs / (runs / "latest").read_text().strip()
        for name in ("model.keras", "history.csv", "curve.png", "params.json", "metrics.json"):
            assert (run_dir / name).stat().st_size > 0, name
        metrics = pd.read_json(run_dir / "metrics.json", typ="series")
        assert np.isfinite(metrics[metric]) and np.isfinite(metrics[baseline])
        assert len(pd.read_csv(run_dir / "history.csv")) == metrics["epochs"]


def test_second_run_is_all_cached_and_quick(first_run):
    root, _ = first_run
    started = time.perf_counter()
    output = run_all(root)
    seconds = time.perf_counter() - started
    assert set(statuses(output).values()) == {"cached"}, output
    assert len(statuses(output)) == 12
    assert seconds < 5, f"a fully cached run took {seconds:.1f}s"


def test_changed_option_reruns_that_stage_and_later_only(first_run):
    root, _ = first_run
    output = run_all(root, "--task", "keypoints", "--keypoint-range", "data")
    found = statuses(output)
    assert found[("keypoints", "download")] == found[("keypoints", "clean")] == "cached"
    assert found[("keypoints", "scale")] == found[("keypoints", "train")] == "ran"
    assert found[("keypoints", "predict")] == found[("keypoints", "submission")] == "ran"


def test_force_reruns(first_run):
    root, _ = first_run
    result = CliRunner().invoke(cli, ["--root", str(root), "clean", "--task", "expressions", "--force"])
    assert result.exit_code == 0
    assert statuses(result.output)[("expressions", "clean")] == "ran"


def test_stage_without_its_input_names_the_command_to_run(tmp_path):
    result = CliRunner().invoke(cli, ["--root", str(tmp_path), "scale", "--task", "keypoints"])
    assert result.exit_code == 1
    assert "run `python run.py clean --task keypoints` first" in result.output
    assert "Traceback" not in result.output


def test_long_steps_narrate_unless_quiet(first_run, tmp_path):
    _, output = first_run
    for progress in ("keypoints clean: parsing", "Epoch 1/2", "expressions predict: the test images with run"):
        assert progress in output

    result = CliRunner().invoke(cli, ["--root", str(tmp_path), "--quiet", "all", "--task", "keypoints", *QUICK])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "BUILT-IN SAMPLE" in result.output        # what a user must know is never silenced
    assert "Epoch" not in result.output and "parsing" not in result.output
    assert set(statuses(result.output)) == {("keypoints", stage) for stage in
                                            ("download", "clean", "scale", "train", "predict", "submission")}


def test_predict_is_cached_by_the_views_it_runs(first_run):
    root, _ = first_run
    own = recipes.default("tta", "expressions")
    other = next(tta for tta in recipes.CHOICES["tta"] if tta != own)

    def predict(*tta):
        output = CliRunner().invoke(cli, ["--root", str(root), "predict", "--task", "expressions", *tta]).output
        return statuses(output)[("expressions", "predict")]

    assert predict("--tta", own) == "cached"   # what `all` predicted with: the recipe's views
    assert predict("--tta", other) == "ran"
    assert predict() == "ran"
