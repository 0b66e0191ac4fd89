"""run.py as a user meets it: options, help, and which competitions a command works on."""
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.core.competitions import EXPRESSIONS, KEYPOINTS
from pipeline.core.recipes import BASE, RECIPES
from pipeline.cli import cli
from pipeline.stages import competitions_for

ROOT = Path(__file__).resolve().parents[1]


def test_a_named_model_picks_its_competition():
    assert competitions_for("both", "densenet") == [EXPRESSIONS]
    assert competitions_for("both", "kaggle_cnn") == [KEYPOINTS]
    assert competitions_for("both", None) == [KEYPOINTS, EXPRESSIONS]
    assert competitions_for("keypoints", None) == [KEYPOINTS]


def test_train_with_a_model_of_one_task_does_not_touch_the_other(tmp_path):
    result = CliRunner().invoke(cli, ["--root", str(tmp_path), "train", "--model", "densenet"])
    assert result.exit_code == 1
    assert "run `python run.py scale --task expressions` first" in result.output


def test_help_shows_the_default_recipes_values_without_loading_tensorflow():
    code = ("import sys\nfrom click.testing import CliRunner\nfrom run import cli\n"
            "out = CliRunner().invoke(cli, ['train', '--help']).output\n"
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)\nprint(out)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    first, help_text = done.stdout.split("\n", 1)
    assert first == "False False"
    fast = RECIPES["fast"]
    assert f"[fast recipe: {fast['keypoints']['epochs']} keypoints, {fast['expressions']['epochs']} expressions]" \
        in " ".join(help_text.split())
    assert "--recipe [fast|best|reference]" in help_text


def test_readme_recipe_table_lists_every_recipe_with_its_settings():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| recipe |"):].split("\n\n")[0]
    for name, recipe in RECIPES.items():
        for task in ("keypoints", "expressions"):
            row = next(line for line in table.splitlines() if line.startswith(f"| `{name}` | {task} |"))
            for key in ("model", "epochs", "batch_size", "optimizer", "schedule", "augment"):
                value = {**BASE, **recipe[task]}[key]
                assert f"{value}" in row, (name, task, key, row)
            assert recipe[task].get("mixed_model", "") in row, (name, task, "mixed_model", row)
            float32_batch = recipe[task].get("float32_settings", {}).get("batch_size")
            assert float32_batch is None or f"{float32_batch} in float32" in row, (name, task, "float32", row)


def test_the_installed_console_script_is_this_command_line():
    import importlib
    import tomllib

    from pipeline.cli import cli

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, name = scripts["faces"].partition(":")
    assert getattr(importlib.import_module(module), name) is cli


@pytest.mark.slow
def test_a_cached_chain_loads_neither_pandas_nor_keras(trained_project):
    code = ("import sys\nfrom click.testing import CliRunner\nfrom pipeline.cli import cli\n"
            f"result = CliRunner().invoke(cli, ['--root', {str(trained_project)!r}, 'all', '--task', 'expressions', "
            "'--model', 'compact_vgg', '--epochs', '1', '--batch-size', '8'])\n"
            "print(result.exit_code, 'pandas' in sys.modules, 'keras' in sys.modules, 'tensorflow' in sys.modules)\n"
            "print(result.output)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    first, output = done.stdout.split("\n", 1)
    assert first == "0 False False False", done.stdout + done.stderr
    assert output.count(" cached ") == 6   # download, clean, scale, train, predict, submission
