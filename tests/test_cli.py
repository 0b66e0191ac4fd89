"""run.py as a user meets it: options, help, and which competitions a command works on."""
import subprocess
import sys
from pathlib import Path

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
