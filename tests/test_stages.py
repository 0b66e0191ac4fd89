"""stages.Pipeline: the cache decides whether a stage runs, progress is told only when it does,
and runs are chosen by name, latest or best."""
import json

import pytest

from pipeline.data import clean, sample
from pipeline.core.competitions import EXPRESSIONS, KEYPOINTS
from pipeline.core.errors import MissingInputError
from pipeline.stages import Pipeline, scores_line
from pipeline.core import layout

TINY = sample.SampleSizes(keypoints_train=20, keypoints_test=4)


def raw_keypoints(root):
    raw = root / "data" / "raw" / KEYPOINTS.slug
    raw.mkdir(parents=True)
    sample.write_sample(KEYPOINTS, raw, seed=1, sizes=TINY)


def test_a_stage_runs_then_is_cached_and_narrates_only_when_it_runs(tmp_path):
    said = []
    chain = Pipeline(tmp_path, echo=said.append)
    raw_keypoints(tmp_path)

    assert chain.clean(KEYPOINTS).status == "ran"
    assert any("clean: parsing" in line for line in said)
    said.clear()
    assert chain.clean(KEYPOINTS).status == "cached"
    assert said == []
    assert chain.clean(KEYPOINTS, dropna=True).status == "ran"       # another option: runs again


def test_data_cleaned_by_an_older_format_is_cleaned_again(tmp_path):
    chain = Pipeline(tmp_path, echo=lambda line: None)
    raw_keypoints(tmp_path)
    chain.clean(KEYPOINTS)
    manifest = tmp_path / "data" / "interim" / KEYPOINTS.slug / "clean.manifest.json"
    record = json.loads(manifest.read_text())
    assert record["params"]["format"] == layout.CLEAN_FORMAT
    record["params"]["format"] = layout.CLEAN_FORMAT - 1
    manifest.write_text(json.dumps(record))
    assert chain.clean(KEYPOINTS).status == "ran"
    assert chain.clean(KEYPOINTS).status == "cached"


def test_quiet_pipeline_says_nothing_while_running(tmp_path):
    said = []
    raw_keypoints(tmp_path)
    outcome = Pipeline(tmp_path, echo=said.append, progress=False).clean(KEYPOINTS)
    assert outcome.status == "ran" and outcome.summary["train_rows"] == 20
    assert said == []


def test_a_stage_without_its_input_names_the_command_that_makes_it(tmp_path):
    with pytest.raises(MissingInputError, match="run `python run.py clean --task expressions` first"):
        Pipeline(tmp_path).scale(EXPRESSIONS)


def fake_run(runs, name, val_accuracy):
    folder = runs / name
    folder.mkdir(parents=True)
    (folder / "predictor.json").write_text("{}")
    (folder / "params.json").write_text(json.dumps({"recipe": "reference", "model": name.split("-")[0]}))
    (folder / "metrics.json").write_text(json.dumps({"val_accuracy": val_accuracy}))
    return folder


def test_runs_are_chosen_by_name_latest_or_best(tmp_path):
    said = []
    chain = Pipeline(tmp_path, echo=said.append)
    runs = chain.layout.runs(EXPRESSIONS)
    fake_run(runs, "vgg-aaaa", 0.61)
    better = fake_run(runs, "compact_vgg-bbbb", 0.66)
    (runs / "latest").write_text("vgg-aaaa\n")

    assert chain.run_dir(EXPRESSIONS, "latest").name == "vgg-aaaa"
    assert chain.run_dir(EXPRESSIONS, "best").path == better
    assert said == ["expressions: best run by validation score: compact_vgg-bbbb"]
    assert chain.run_dir(EXPRESSIONS, "vgg-aaaa").name == "vgg-aaaa"
    with pytest.raises(MissingInputError, match="trained model for run nope"):
        chain.run_dir(EXPRESSIONS, "nope")


@pytest.mark.parametrize("tta, says", [("multi", "1.200 px, 1.100 px with multi TTA"), ("flip", "1.200 px, 1.150 px with flip TTA"),
                                       ("none", "1.200 px (predicting")])
def test_the_closing_line_scores_the_run_under_the_tta_its_submission_was_predicted_with(tta, says):
    metrics = {"val_rmse": 1.2, "val_rmse_flip": 1.15, "val_rmse_multi": 1.1, "baseline_rmse": 6.6}
    line = scores_line(KEYPOINTS, metrics, tta, {"file": "s.csv"})
    assert says in line and line.endswith("submission s.csv")
    assert "TTA" not in line if tta == "none" else line.count("TTA") == 1
