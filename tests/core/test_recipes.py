"""Recipes: every training default in one place, resolved as given > recipe > BASE."""
import pytest

from pipeline.core import recipes
from pipeline.core.errors import PipelineError
from pipeline.training.params import resolve


def test_options_come_from_the_command_line_then_the_recipe_then_the_base():
    params = resolve("keypoints", {"epochs": 5, "lr": None}, "reference")
    assert params["epochs"] == 5                                       # given
    assert params["model"] == "kaggle_cnn" and params["loss"] == "rmse"   # the reference recipe
    assert params["batch_size"] == 64 and params["augment"] == "none"
    assert params["lr"] == recipes.BASE["lr"] and params["recipe"] == "reference"   # the base


def test_only_what_matters_for_the_task_and_model_is_kept():
    keypoints = resolve("keypoints", {})
    assert "label_smoothing" not in keypoints and "weights" not in keypoints and "tta" not in keypoints
    expressions = resolve("expressions", {"validation": "public-test"})
    assert "loss" not in expressions and "val_fraction" not in expressions
    assert resolve("expressions", {"model": "vgg16_transfer"})["weights"] == "imagenet"


def test_model_of_the_other_task_is_refused():
    with pytest.raises(PipelineError, match="kaggle_cnn is a keypoints model"):
        resolve("expressions", {"model": "kaggle_cnn"})


def test_unknown_recipe_and_choice_list_the_choices():
    with pytest.raises(PipelineError, match="fast, best, reference"):
        resolve("expressions", {}, "fastest")
    with pytest.raises(PipelineError, match="cosine"):
        resolve("expressions", {"schedule": "step"})


def test_every_recipe_sets_every_task_with_known_keys():
    for name, recipe in recipes.RECIPES.items():
        assert recipe["about"]
        for task in ("keypoints", "expressions"):
            assert set(recipe[task]) <= set(recipes.BASE), (name, task)
            resolve(task, {}, name)


def test_a_recipes_mixed_precision_model_gives_way_to_the_users_model():
    fast = recipes.RECIPES["fast"]["expressions"]
    assert resolve("expressions", {"precision": "mixed"})["model"] == fast["mixed_model"] != fast["model"]
    assert resolve("expressions", {"precision": "float32"})["model"] == fast["model"]
    assert resolve("expressions", {"precision": "mixed", "model": "compact_vgg"})["model"] == "compact_vgg"
    assert resolve("expressions", {"precision": "mixed"}, "best")["model"] == "densenet"   # best names none
    assert resolve("keypoints", {"precision": "mixed"})["model"] == recipes.default("model", "keypoints")
    assert "mixed_model" not in resolve("expressions", {"precision": "mixed"})   # the model it chose is recorded


def test_a_recipes_float32_settings_apply_where_its_own_model_trains_in_float32():
    fast = recipes.RECIPES["fast"]["expressions"]
    settings = fast["float32_settings"]
    assert settings and all(fast.get(key, recipes.BASE[key]) != value for key, value in settings.items())
    for given in ({"precision": "float32"}, {"precision": "float32", "model": fast["model"]}):   # named or not
        params = resolve("expressions", given)
        assert {key: params[key] for key in settings} == settings and "float32_settings" not in params
    mixed = resolve("expressions", {"precision": "mixed", "model": fast["model"]})
    other = resolve("expressions", {"precision": "float32", "model": "mini_xception"})
    for params in (mixed, other):   # another precision, another model: the entry's own settings
        assert params["batch_size"] == fast["batch_size"] and params["lr"] == fast.get("lr", recipes.BASE["lr"])
    assert resolve("expressions", {"precision": "float32", "batch_size": 32})["batch_size"] == 32   # given wins
    assert resolve("expressions", {"precision": "float32", "batch_size": 32})["lr"] == settings["lr"]


def test_defaults_read_the_default_recipe():
    assert recipes.default("model", "expressions") == recipes.RECIPES[recipes.DEFAULT_RECIPE]["expressions"]["model"]
    assert recipes.default("seed", "keypoints") == recipes.BASE["seed"]


def test_a_run_predicts_with_its_own_recipes_tta_and_old_runs_with_the_default_recipes():
    assert recipes.run_tta("expressions", {"recipe": "best"}) == recipes.RECIPES["best"]["expressions"]["tta"]
    assert recipes.run_tta("keypoints", {"recipe": "reference"}) == recipes.BASE["tta"]
    assert recipes.run_tta("keypoints", {}) == recipes.default("tta", "keypoints", recipes.DEFAULT_RECIPE)
