"""--specialists: one run on the complete rows, one on every row's 4 common keypoints, merged by keypoint."""
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.core.competitions import KEYPOINTS, PARTIAL_COLUMNS
from pipeline.core.fileio import load_arrays
from pipeline.data import sample
from pipeline.data.splits import load_training_data
from pipeline.inference.rundir import RunDir
from pipeline.inference.tta import predict_keypoints
from pipeline.reporting import runs

pytestmark = pytest.mark.slow   # trains three tiny runs

OTHER_COLUMNS = np.setdiff1d(np.arange(30), PARTIAL_COLUMNS)


def invoke(root, *args):
    result = CliRunner().invoke(cli, ["--root", str(root), *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A keypoints project where `all --specialists` has run, beside one plain run of the same options."""
    root = tmp_path_factory.mktemp("specialists")
    raw = root / "data" / "raw" / KEYPOINTS.slug
    raw.mkdir(parents=True)
    sample.write_sample(KEYPOINTS, raw, seed=5, sizes=sample.SampleSizes(keypoints_train=120, keypoints_test=7))
    options = ["--task", "keypoints", "--model", "kaggle_cnn", "--epochs", "2", "--batch-size", "16"]
    invoke(root, "all", *options)
    output = invoke(root, "all", *options, "--specialists")
    return root, output


def latest(root):
    folder = root / "data" / "runs" / KEYPOINTS.slug
    return RunDir(folder / (folder / "latest").read_text().strip())


def test_each_specialist_trains_on_its_own_rows_and_keypoints(trained):
    root, _ = trained
    merged = latest(root)
    assert merged.is_specialists and "-sp2-" in merged.name
    complete, common = merged.members
    assert (complete.params["specialist"], common.params["specialist"]) == ("complete", "common")
    processed = root / "data" / "processed" / KEYPOINTS.slug
    everything = load_training_data("keypoints", processed, merged.params)

    on_complete = load_training_data("keypoints", processed, complete.params)
    assert not np.isnan(on_complete.train_y).any() and not np.isnan(on_complete.val_y).any()
    assert len(on_complete.train_x) == int((~np.isnan(everything.train_y).any(axis=1)).sum())

    on_common = load_training_data("keypoints", processed, common.params)
    assert len(on_common.train_x) == len(everything.train_x)   # every row ...
    assert np.isnan(on_common.train_y[:, OTHER_COLUMNS]).all()   # ... but only the 4 common keypoints
    np.testing.assert_array_equal(on_common.train_y[:, PARTIAL_COLUMNS], everything.train_y[:, PARTIAL_COLUMNS])


def test_the_merged_model_takes_each_keypoint_from_its_specialist(trained):
    root, _ = trained
    merged = latest(root)
    complete, common = merged.members
    images = load_arrays(root / "data" / "processed" / KEYPOINTS.slug / "arrays.npz")["test_x"]
    together = predict_keypoints(merged.load_models(), images, merged.scaling, 8)
    from_complete = predict_keypoints(complete.load_models(), images, merged.scaling, 8)
    from_common = predict_keypoints(common.load_models(), images, merged.scaling, 8)
    np.testing.assert_allclose(together[:, PARTIAL_COLUMNS], from_common[:, PARTIAL_COLUMNS], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(together[:, OTHER_COLUMNS], from_complete[:, OTHER_COLUMNS], rtol=1e-5, atol=1e-4)
    assert not np.allclose(from_common[:, PARTIAL_COLUMNS], from_complete[:, PARTIAL_COLUMNS])   # two models


def test_the_merged_run_is_scored_on_every_validation_row_and_target(trained):
    root, _ = trained
    merged = latest(root)
    data = load_training_data("keypoints", root / "data" / "processed" / KEYPOINTS.slug, merged.params)
    truth = data.scaling.inverse_transform(data.val_y)
    predicted = predict_keypoints(merged.load_models(), data.val_x, data.scaling, 16)
    present = ~np.isnan(truth)
    rmse = np.sqrt(np.mean((predicted - truth)[present] ** 2))
    assert merged.metrics["val_rmse"] == pytest.approx(rmse, rel=1e-4)
    assert set(merged.metrics["members"]) == {member.name for member in merged.members}


def test_the_specialists_submission_answers_every_lookup_row(trained):
    root, output = trained
    merged = latest(root)
    lookup = pd.read_csv(root / "data" / "raw" / KEYPOINTS.slug / "IdLookupTable.csv")
    submission = pd.read_csv(root / "submissions" / f"{KEYPOINTS.slug}-{merged.name}.csv")
    assert list(submission.columns) == ["RowId", "Location"] and merged.name in output
    np.testing.assert_array_equal(submission.RowId, lookup.RowId)
    assert submission.Location.between(0, 96).all()


def test_runs_mark_the_specialists_and_best_passes_over_their_members(trained):
    root, _ = trained
    folder = root / "data" / "runs" / KEYPOINTS.slug
    merged = latest(root)
    table = "\n".join(runs.tables(folder, "keypoints"))
    assert "specialists " in table and "complete only" in table and "common only" in table
    chosen = runs.listed(folder, "keypoints", comparable=True)
    assert merged in chosen and not set(merged.members) & set(chosen) and len(chosen) == 2


def test_specialists_refuse_folds_in_one_line(project):
    result = CliRunner().invoke(cli, ["--root", str(project), "train", "--task", "keypoints", "--specialists",
                                      "--folds", "2"])
    assert result.exit_code == 1 and "--specialists" in result.output and "Traceback" not in result.output
