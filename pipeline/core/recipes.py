"""Training recipes: every training option, with its default, in one place (plain data).

A recipe names a complete way to train a task: model, optimizer, schedule, augmentation, epochs,
patience, test-time augmentation. `resolve` fills a run's parameters from, in this order, the
options the user gave, the recipe's entry for the task, and BASE. The command line's help, the
README's recipe table (checked by tests/test_recipes.py) and params.json all come from here.
Importing this module is cheap: no Keras.
"""
from pipeline.core.errors import PipelineError

DEFAULT_RECIPE = "fast"

# What every recipe starts from.
BASE = {
    "model": None,              # set by every recipe
    "mixed_model": None,        # the model instead where precision resolves to mixed, unless --model is given
    "float32_settings": {},     # settings over the entry's where the entry's own model trains in float32
    "epochs": 60,
    "batch_size": 32,
    "seed": 0,
    "optimizer": "adam",        # adam | adamw | adamax | sgd (Nesterov momentum 0.9)
    "lr": 1e-3,
    "weight_decay": 0.0,        # decoupled (adamw, sgd)
    "schedule": "none",         # none | cosine (linear warm-up, then half a cosine to 0) | plateau
    "warmup_epochs": 0,
    "patience": 10,             # epochs without a better validation metric before stopping
    "augment": "standard",      # none | standard | strong (see augment.STRENGTHS)
    "augment_on": "host",       # host (numpy, worker threads) | device (layers in the model; expressions)
    "label_smoothing": 0.0,     # expressions
    "loss": "mse",              # keypoints: mse | rmse, over the targets a row has
    "validation": "split",      # split: val_fraction of Training | public-test (expressions)
    "val_fraction": 0.15,
    "ferplus_target": "dist",   # FERPlus: the vote distribution | the majority label
    "class_weight": "none",     # none | balanced | sqrt
    "weights": "imagenet",      # vgg16_transfer's base
    "tta": "none",              # none | flip | multi (10 shifted and mirrored views): predict's default
    "ensemble": 1,              # K > 1: K runs with seeds seed .. seed+K-1, averaged when predicting
    "folds": 1,                 # K > 1: K-fold cross-validation, one run per fold, their average predicts
    "specialists": False,       # keypoints: a run on the complete rows and one on every row's 4 common keypoints
    "tensorboard": False,       # Keras's TensorBoard logs in the run folder's tensorboard/
    "strategy": "none",         # none | mirrored (this machine's GPUs) | multiworker (TF_CONFIG): distribute.py
    "precision": "auto",        # auto (mixed on a CPU with bfloat16 units, else float32) | float32 | mixed
}

RECIPES = {
    "fast": {
        "about": "the best found for 2 CPU cores within an hour of training (the default); for expressions "
                 "compact_vgg_wide where the CPU has bfloat16 units",
        # 110 epochs and ten-view TTA: 1.34-1.36 px (two seeds) on the real-face replica in 19-20 min
        # against 70 epochs' 1.43 px with flip in 11 (Intel Xeon with AMX, 2 cores; docs/results.md).
        # Batch 64 with twice the rate trains 17% faster but lost 0.010 and 0.017 px on two seeds.
        "keypoints": {"model": "heatmap_keypoints", "epochs": 110, "batch_size": 32, "schedule": "cosine",
                      "warmup_epochs": 2, "patience": 110, "tta": "multi"},
        # Where the CPU computes in bfloat16 (--precision auto: mixed), four times compact_vgg's
        # arithmetic fits the same hour: 70.3% FER2013 PrivateTest in 40 min against 67.3% in 16
        # (AMD EPYC Zen 5, 2 cores; docs/results.md). In float32 it would take hours.
        # compact_vgg in float32 trains at batch 128 with twice the rate: 8-13% more images/s through
        # the input path with oneDNN's AVX-512 and AVX2 kernels, 67.6% FER2013 PrivateTest against
        # batch 64's 67.3% (Intel Xeon, 2 cores; docs/results.md).
        # Ten-view TTA: PublicTest, the validation set, scored it above flip in 12 of 13 FER2013 runs on
        # the CPU (0.4 points on average) and in 4 of 6 FERPlus runs (docs/results.md).
        "expressions": {"model": "compact_vgg", "mixed_model": "compact_vgg_wide", "epochs": 60, "batch_size": 64,
                        "schedule": "cosine", "warmup_epochs": 2, "patience": 60, "label_smoothing": 0.1,
                        "validation": "public-test", "tta": "multi",
                        "float32_settings": {"batch_size": 128, "lr": 2e-3}},
    },
    "best": {
        "about": "the strongest single network measured (densenet, 71.6% FER2013 PrivateTest); needs a GPU",
        "keypoints": {"model": "heatmap_keypoints", "epochs": 200, "batch_size": 64, "schedule": "cosine",
                      "warmup_epochs": 5, "patience": 200, "augment": "strong", "tta": "multi"},
        "expressions": {"model": "densenet", "epochs": 40, "batch_size": 64, "schedule": "cosine",
                        "warmup_epochs": 2, "patience": 40, "label_smoothing": 0.1,
                        "validation": "public-test", "tta": "multi"},
    },
    "reference": {
        "about": "the published baselines as written: the Kaggle keypoints CNN, the mini-Xception paper",
        "keypoints": {"model": "kaggle_cnn", "epochs": 100, "batch_size": 64, "loss": "rmse", "augment": "none"},
        "expressions": {"model": "mini_xception", "epochs": 100, "batch_size": 32, "schedule": "plateau",
                        "patience": 50},
    },
}

# Test-time augmentation: the views of each image whose predictions are averaged, as (mirrored, dx,
# dy) in pixels. "multi" is ten views, like ten-crop TTA: the image and its mirror, each as it is and
# moved 2 px left, right, up and down. inference/tta.py makes and undoes them.
TTA_VIEWS = {
    "none": [(False, 0, 0)],
    "flip": [(False, 0, 0), (True, 0, 0)],
    "multi": [(mirrored, dx, dy) for mirrored in (False, True)
              for dx, dy in ((0, 0), (2, 0), (-2, 0), (0, 2), (0, -2))],
}

CHOICES = {
    "optimizer": ("adam", "adamw", "adamax", "sgd"),
    "schedule": ("none", "cosine", "plateau"),
    "augment": ("none", "standard", "strong"),
    "augment_on": ("host", "device"),
    "loss": ("mse", "rmse"),
    "validation": ("split", "public-test"),
    "ferplus_target": ("dist", "majority"),
    "class_weight": ("none", "balanced", "sqrt"),
    "weights": ("imagenet", "none"),
    "tta": tuple(TTA_VIEWS),
    "strategy": ("none", "mirrored", "multiworker"),
    "precision": ("auto", "float32", "mixed"),
}
PREDICT_ONLY = ("tta",)   # a prediction choice: the recipe gives predict its default, training ignores it
KEYPOINT_ONLY = ("loss", "specialists")
# --specialists' two runs, by their "specialist" parameter (data/splits.py specialise): the rows with
# all 15 keypoints, and every row's 4 common keypoints.
COMPLETE, COMMON = SPECIALIST_ROLES = ("complete", "common")
EXPRESSION_ONLY = ("label_smoothing", "validation", "ferplus_target", "class_weight")
MODEL_ONLY = {"weights": "vgg16_transfer"}


def recipe(name):
    try:
        return RECIPES[name]
    except KeyError:
        raise PipelineError(f"unknown recipe {name!r}; choose one of: {', '.join(RECIPES)}") from None


def default(key, task, recipe_name=DEFAULT_RECIPE):
    """The value `key` takes for `task` under a recipe when the user leaves it unset."""
    return {**BASE, **recipe(recipe_name)[task]}[key]


def run_tta(task, params):
    """A trained run's own test-time augmentation: its recipe's (runs made before recipes: fast's),
    or the one its params name (a stack's)."""
    return params.get("tta") or default("tta", task, params.get("recipe", DEFAULT_RECIPE))
