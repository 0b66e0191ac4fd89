"""`run.py runs` and `--run best`: every trained run, best validation score first."""
import json

from click.testing import CliRunner

from pipeline import runs
from pipeline.competitions import EXPRESSIONS
from pipeline.stages import Pipeline
from run import cli


def fake_run(folder, name, accuracy, flip, recipe="fast", public=None):
    run = folder / name
    run.mkdir(parents=True)
    (run / "params.json").write_text(json.dumps({"recipe": recipe, "schedule": "cosine", "lr": 0.001,
                                                 "augment": "standard", "batch_size": 64}))
    (run / "metrics.json").write_text(json.dumps({"val_accuracy": accuracy, "val_accuracy_flip": flip,
                                                  "epochs": 3, "train_seconds": 60.0}))
    (run / "predictor.json").write_text(json.dumps({"task": "expressions", "classes": []}))
    if public is not None:
        (run / "test_metrics.json").write_text(json.dumps({"public_test_accuracy": public}))
    return run


def test_runs_are_ranked_by_the_score_under_their_recipes_tta(tmp_path):
    folder = tmp_path / "data" / "runs" / EXPRESSIONS.slug
    fake_run(folder, "a", accuracy=0.60, flip=0.61)                       # fast: flip TTA counts
    fake_run(folder, "b", accuracy=0.62, flip=0.64, public=0.63)
    fake_run(folder, "c", accuracy=0.63, flip=0.70, recipe="reference")   # reference: no TTA
    assert [run.name for run in runs.listed(folder, "expressions")] == ["b", "c", "a"]

    output = CliRunner().invoke(cli, ["--root", str(tmp_path), "runs", "--task", "expressions"]).output
    lines = output.splitlines()
    assert lines[0] == "expressions (3 runs):"
    assert [line.split()[0] for line in lines[3:]] == ["b", "c", "a"]
    assert "0.6300" in lines[3]   # PublicTest of the predicted run


def test_run_best_picks_the_best_and_says_which(tmp_path):
    folder = tmp_path / "data" / "runs" / EXPRESSIONS.slug
    fake_run(folder, "a", accuracy=0.60, flip=0.61)
    fake_run(folder, "b", accuracy=0.62, flip=0.64)
    said = []
    assert Pipeline(tmp_path, echo=said.append).run_dir(EXPRESSIONS, "best").name == "b"
    assert said == ["expressions: best run by validation score: b"]
