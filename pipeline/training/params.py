"""A run's complete parameters, resolved from the user's options, a recipe and recipes.BASE.

Kept apart from core/recipes.py (plain data) because it checks the model against the task, which
takes the model registry. Importing it is cheap: no Keras.
"""
import os

from pipeline.core.errors import PipelineError
from pipeline.core.hardware import has_bfloat16_units, nvidia_gpu_present
from pipeline.core.recipes import (BASE, CHOICES, DEFAULT_RECIPE, EXPRESSION_ONLY, KEYPOINT_ONLY, MODEL_ONLY,
                                   PREDICT_ONLY, recipe)
from pipeline.models import get_spec, models_for


def auto_precision():
    """--precision auto: "mixed" on a CPU with bfloat16 units (AVX512_BF16 or AMX, not capped away by
    ONEDNN_MAX_CPU_ISA) and no GPU, else
    "float32". There bfloat16 trained the default models 1.3x to 1.6x faster with fused batch norm
    (compact_vgg 994 -> 1,453 images/s, heatmap_keypoints 372 -> 494, densenet 56 -> 90 on an AMD
    EPYC, 2 cores; docs/results.md); on an H200 mixed precision was no faster than float32. Decided
    without loading TensorFlow, so that a cached chain stays quick."""
    bfloat16 = has_bfloat16_units()
    tensorflow = os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow"   # measured there only
    return "mixed" if bfloat16 and tensorflow and not nvidia_gpu_present() else "float32"


# Models that train faster in float32 than in mixed bfloat16 even on a CPU with bfloat16 units, so
# that --precision auto keeps float32 for them: mini_xception's depthwise convolutions (Intel Xeon
# with AMX, 2 cores, batch 32, from memory) at 1,259 images/s in float32 against 748 in mixed
# precision with its best thread layout (366 with TensorFlow's default). The other models of the zoo
# measured there trained 1.4x (kaggle_cnn) to 2.6x (lenet7) faster mixed (docs/results.md).
FLOAT32_FASTER = {"mini_xception"}


def resolve(task, given, recipe_name=DEFAULT_RECIPE):
    """A run's complete parameters: `given` (None = unset) over the recipe's over BASE.

    A recipe's `mixed_model` takes the place of its model where the precision resolves to mixed
    (bfloat16 units), unless the user names a model. Its `float32_settings` take the place of its
    own where its model trains in float32, named or not, unless the user gives them. Only the
    parameters that matter for this task and model are kept, so they alone decide the cache.
    """
    given = {k: v for k, v in given.items() if v is not None}
    entry = {**BASE, **recipe(recipe_name)[task]}
    params = {**entry, **given, "recipe": recipe_name}
    auto = params["precision"] == "auto"
    if auto:
        params["precision"] = auto_precision()
    mixed_model = params.pop("mixed_model")
    if mixed_model and params["precision"] == "mixed" and "model" not in given:
        params["model"] = mixed_model
    if auto and params["model"] in FLOAT32_FASTER:
        params["precision"] = "float32"
    float32_settings = params.pop("float32_settings")
    if params["precision"] == "float32" and params["model"] == entry["model"]:
        params.update({key: value for key, value in float32_settings.items() if key not in given})
    spec = get_spec(params["model"])
    if spec.task != task:
        raise PipelineError(f"--model {params['model']} is a {spec.task} model; for {task} choose one of: "
                            + ", ".join(models_for(task)))
    for key, choices in CHOICES.items():
        if params[key] not in choices:
            raise PipelineError(f"unknown {key.replace('_', '-')} {params[key]!r}; choose one of: {', '.join(choices)}")
    drop = set(PREDICT_ONLY) | set(EXPRESSION_ONLY if task == "keypoints" else KEYPOINT_ONLY)
    drop |= {key for key, model in MODEL_ONLY.items() if params["model"] != model}
    if params["validation"] != "split":
        drop.add("val_fraction")
    if not params["tensorboard"]:
        drop.add("tensorboard")
    if params["folds"] == 1:
        drop.add("folds")   # absent unless cross-validating: earlier runs keep their names
    else:
        if params["folds"] < 2 or params["ensemble"] > 1:
            raise PipelineError(f"--folds {params['folds']}: cross-validate with 2 folds or more, and without "
                                "--ensemble (the folds' models are averaged already)")
        drop |= {"validation", "val_fraction"}   # each fold validates on its held-out rows
    if not params["specialists"]:
        drop.add("specialists")   # absent unless used: earlier runs keep their names
    elif task == "keypoints" and (params["folds"] > 1 or params["ensemble"] > 1):
        raise PipelineError("--specialists trains two runs of its own: use it without --folds and --ensemble")
    if params["strategy"] == "none":
        drop.add("strategy")   # absent unless used: runs trained before it existed keep their names
    if params["precision"] == "float32":
        drop.add("precision")   # absent unless mixed: float32 runs keep the names they had
    if params["augment_on"] == "host":
        drop.add("augment_on")
    elif task == "keypoints":
        raise PipelineError("--augment-on device is for expressions: keypoints augment on the host, "
                            "where their targets move with the image")
    return {k: v for k, v in sorted(params.items()) if k not in drop}
