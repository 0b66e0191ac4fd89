"""`run.py runs` and `--run best`: every trained run, best validation score first."""
import json

import pytest
from click.testing import CliRunner

from pipeline.reporting import runs
from pipeline.core.competitions import EXPRESSIONS, FER2013_CLASSES, FERPLUS_CLASSES
from pipeline.core.errors import MissingInputError
from pipeline.stages import Pipeline
from pipeline.cli import cli


def fake_run(folder, name, accuracy, with_tta, recipe="fast", public=None, classes=FER2013_CLASSES):
    """A finished expressions run whose validation accuracy is `accuracy`, and `with_tta` under flip and
    under ten views."""
    run = folder / name
    run.mkdir(parents=True)
    (run / "params.json").write_text(json.dumps({"recipe": recipe, "schedule": "cosine", "lr": 0.001,
                                                 "augment": "standard", "batch_size": 64}))
    (run / "metrics.json").write_text(json.dumps({"val_accuracy": accuracy, "val_accuracy_flip": with_tta,
                                                  "val_accuracy_multi": with_tta, "epochs": 3, "train_seconds": 60.0}))
    (run / "predictor.json").write_text(json.dumps({"task": "expressions", "classes": list(classes)}))
    if public is not None:
        (run / "test_metrics.json").write_text(json.dumps({"public_test_accuracy": public}))
    return run


def test_runs_are_ranked_by_the_score_under_their_recipes_tta(tmp_path):
    folder = tmp_path / "data" / "runs" / EXPRESSIONS.slug
    fake_run(folder, "a", accuracy=0.60, with_tta=0.61)                       # fast: its TTA's score counts
    fake_run(folder, "b", accuracy=0.62, with_tta=0.64, public=0.63)
    fake_run(folder, "c", accuracy=0.63, with_tta=0.70, recipe="reference")   # reference: no TTA
    assert [run.name for run in runs.listed(folder, "expressions")] == ["b", "c", "a"]

    output = CliRunner().invoke(cli, ["--root", str(tmp_path), "runs", "--task", "expressions"]).output
    lines = output.splitlines()
    assert lines[0] == "expressions, fer2013 labels (3 runs):"
    assert [line.split()[0] for line in lines[3:]] == ["b", "c", "a"]
    assert "0.6300" in lines[3]   # PublicTest of the predicted run


def test_run_best_picks_the_best_and_says_which(tmp_path):
    folder = tmp_path / "data" / "runs" / EXPRESSIONS.slug
    fake_run(folder, "a", accuracy=0.60, with_tta=0.61)
    fake_run(folder, "b", accuracy=0.62, with_tta=0.64)
    said = []
    assert Pipeline(tmp_path, echo=said.append).run_dir(EXPRESSIONS, "best").name == "b"
    assert said == ["expressions: best run by validation score: b"]


def test_fer2013_and_ferplus_runs_are_listed_apart(tmp_path):
    folder = tmp_path / "data" / "runs" / EXPRESSIONS.slug
    fake_run(folder, "fer", accuracy=0.66, with_tta=0.67)
    fake_run(folder, "plus", accuracy=0.85, with_tta=0.86, classes=FERPLUS_CLASSES)
    assert [run.name for run in runs.listed(folder, "expressions", labels="fer2013")] == ["fer"]
    assert [run.labels for run in runs.listed(folder, "expressions")] == ["ferplus", "fer2013"]

    lines = CliRunner().invoke(cli, ["--root", str(tmp_path), "runs", "--task", "expressions"]).output.splitlines()
    assert lines[0] == "expressions, fer2013 labels (1 runs):" and lines[3].startswith("fer ")
    assert lines[4] == "expressions, ferplus labels (1 runs):" and lines[7].startswith("plus ")


def processed_labels(root, classes):
    meta = Pipeline(root).layout.processed(EXPRESSIONS) / "meta.json"
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"classes": list(classes)}))


def test_run_best_ranks_only_the_runs_trained_on_the_processed_labels(tmp_path):
    folder = tmp_path / "data" / "runs" / EXPRESSIONS.slug
    fake_run(folder, "fer", accuracy=0.66, with_tta=0.67)
    fake_run(folder, "plus", accuracy=0.85, with_tta=0.86, classes=FERPLUS_CLASSES)
    said = []
    chain = Pipeline(tmp_path, echo=said.append)

    processed_labels(tmp_path, FER2013_CLASSES)
    assert chain.run_dir(EXPRESSIONS, "best").name == "fer"          # not the FERPlus run's 86%
    processed_labels(tmp_path, FERPLUS_CLASSES)
    assert chain.run_dir(EXPRESSIONS, "best").name == "plus"
    assert said == ["expressions: best run by validation score among the fer2013 runs: fer",
                    "expressions: best run by validation score among the ferplus runs: plus"]


def test_run_best_says_when_no_run_matches_the_processed_labels(tmp_path):
    fake_run(tmp_path / "data" / "runs" / EXPRESSIONS.slug, "plus", accuracy=0.85, with_tta=0.86,
             classes=FERPLUS_CLASSES)
    processed_labels(tmp_path, FER2013_CLASSES)
    with pytest.raises(MissingInputError, match=r"no run trained on fer2013 labels.*the 1 here were trained on "
                                                r"ferplus.*clean --labels ferplus"):
        Pipeline(tmp_path, echo=lambda _: None).run_dir(EXPRESSIONS, "best")
