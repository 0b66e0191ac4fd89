"""The command line's options, defined once and shared by the stage commands and `all`.

Every default and choice comes from core/defaults.py or core/recipes.py, which the stages and
the stage functions read too."""
from pathlib import Path

import click

from pipeline.core import defaults
from pipeline.core.recipes import CHOICES, DEFAULT_RECIPE, EXPRESSION_ONLY, KEYPOINT_ONLY, RECIPES, default

TASK_CHOICES = click.Choice(["keypoints", "expressions", "both"])
TASK_OF_KEY = {**{key: "keypoints" for key in KEYPOINT_ONLY}, **{key: "expressions" for key in EXPRESSION_ONLY}}


def options(*decorators):
    def apply(function):
        for decorator in reversed(decorators):
            function = decorator(function)
        return function
    return apply


TASK = click.option("--task", type=TASK_CHOICES, default="both", help="Which competition.")
ONE_TASK = click.option("--task", type=click.Choice(["keypoints", "expressions"]), required=True,
                        help="Which competition to submit to.")
FORCE = click.option("--force", is_flag=True, help="Re-run even when the cache says the outputs are current.")
SEED = click.option("--seed", type=int, default=defaults.SEED, help="Seed for the built-in sample and for training.")
RESUME = click.option("--resume", is_flag=True,
                      help="Continue a training stopped by Ctrl-C or SIGTERM from its last epoch (same options).")
DOWNLOAD = options(
    click.option("--source", type=click.Choice(defaults.SOURCES), default=defaults.SOURCE,
                 help="auto: files already in data/raw/<slug>/, else Kaggle if credentials exist, else the built-in sample."),
    click.option("--from", "from_path", type=click.Path(exists=True, path_type=Path), default=None,
                 help="Import a file or folder you have instead: csv, csv.gz/xz, zip, tar.gz/xz or the Kaggle "
                      "bundle as downloaded. With --task both, each competition whose files it holds."),
    click.option("--sample-size", type=click.FloatRange(min=0, min_open=True), default=defaults.SAMPLE_SIZE,
                 help="Size of the built-in sample as a fraction of the default (500 keypoint and 1350 expression faces)."),
)
CLEAN = options(
    click.option("--dropna", is_flag=True, help="Keypoints: keep only rows with all 30 targets (the reference); default keeps all rows and masks missing targets."),
    click.option("--labels", type=click.Choice(defaults.LABEL_SETS), default=defaults.LABELS,
                 help="Expressions: FER2013's labels, or FERPlus majority votes from fer2013new.csv."),
    click.option("--skip-bad-rows", is_flag=True, help="Drop malformed training rows (counted in the summary) instead of stopping."),
)
SCALE = options(
    click.option("--keypoint-range", type=click.Choice(defaults.KEYPOINT_RANGES), default=defaults.KEYPOINT_RANGE,
                 help="Map keypoints to [-1, 1] from the image bounds 0..96 (reference) or from the training data's min..max."),
)


def recipe_default(key):
    """The help text's default for a training option: what the default recipe gives each task, and
    what it gives its model in float32 where that differs."""
    tasks = [TASK_OF_KEY[key]] if key in TASK_OF_KEY else ["keypoints", "expressions"]
    values = {task: default(key, task) for task in tasks}
    if len(set(map(repr, values.values()))) == 1:
        text = f"{values[tasks[0]]}"
    else:
        text = ", ".join(f"{v} {t}" for t, v in values.items())
    for task in tasks:
        if key in default("float32_settings", task):
            text += f"; {default('float32_settings', task)[key]} where {default('model', task)} trains in float32"
    return f"  [{DEFAULT_RECIPE} recipe: {text}]"


def train_option(name, help, key=None, **kwargs):
    key = key or name.lstrip("-").replace("-", "_")
    if key in CHOICES:
        kwargs["type"] = click.Choice(CHOICES[key])
    return click.option(name, key, default=None, help=help + recipe_default(key), **kwargs)


TRAIN = options(
    click.option("--recipe", type=click.Choice(list(RECIPES)), default=DEFAULT_RECIPE,
                 help="Named training setup; every option below overrides its part. "
                      + "; ".join(f"{name}: {r['about']}" for name, r in RECIPES.items()) + "."),
    train_option("--model", "Model (see `run.py models`); names the task when --task is not given. The "
                            f"{DEFAULT_RECIPE} recipe trains {default('mixed_model', 'expressions')} for expressions "
                            "where --precision resolves to mixed."),
    train_option("--epochs", "Maximum epochs.", type=int),
    train_option("--batch-size", "Batch size.", type=int),
    train_option("--optimizer", "Optimizer (sgd: Nesterov momentum 0.9)."),
    train_option("--lr", "Peak learning rate.", type=float),
    train_option("--weight-decay", "Decoupled weight decay (adamw, sgd).", type=float),
    train_option("--schedule", "Learning-rate schedule: cosine warms up, then follows half a cosine to 0; "
                               "plateau cuts the rate when validation stalls."),
    train_option("--warmup-epochs", "Linear warm-up of the cosine schedule.", type=int),
    train_option("--patience", "Epochs without a better validation score (RMSE, accuracy) before stopping; "
                               "the best epoch's weights are kept.", type=int),
    train_option("--augment", "Augmentation strength: flips, shifts, rotations, zoom, lighting, noise; "
                              "strong adds random erasing."),
    train_option("--augment-on", "Where augmentation runs: host (numpy, in worker threads) or device (Keras "
                                 "preprocessing layers in front of the model, on the GPU; expressions only; "
                                 "no salt-and-pepper noise there)."),
    train_option("--label-smoothing", "Expressions: label smoothing of the training loss.", type=float),
    train_option("--loss", "Keypoints: masked MSE or masked RMSE."),
    train_option("--validation", "Expressions: validate on a split of Training, or on PublicTest "
                                 "(all of Training trains)."),
    train_option("--val-fraction", "Share of Training held out for a split validation (stratified for "
                                   "expressions).", type=float),
    train_option("--ferplus-target", "FERPlus: train on the vote distribution or the majority label."),
    train_option("--class-weight", "Expressions: weight rare classes (FER2013 disgust)."),
    train_option("--weights", "vgg16_transfer: ImageNet weights (downloaded once by Keras) or untrained."),
    train_option("--strategy", "Train on several devices: mirrored uses every GPU (or every logical CPU "
                               "device) of this machine, multiworker several machines as TF_CONFIG describes "
                               "them (README); synchronous, and --batch-size stays the global batch."),
    train_option("--precision", "mixed: compute in bfloat16 with float32 weights, outputs and loss; auto: "
                                "mixed on a CPU with bfloat16 units (AVX512_BF16 or AMX), float32 elsewhere "
                                "(params.json records which ran)."),
    train_option("--ensemble", "Train this many runs, seeds --seed and up, and predict with their average.",
                 type=click.IntRange(min=1)),
    click.option("--tensorboard", "tensorboard", is_flag=True, default=None,
                 help="Write Keras's TensorBoard logs (loss, validation scores, learning rate) into the run "
                      "folder's tensorboard/; view them with `tensorboard --logdir data/runs`."),
    click.option("--specialists", "specialists", is_flag=True, default=None,
                 help="Keypoints: train one run on the rows with all 15 keypoints and one on every row's 4 common "
                      "keypoints (eye centres, nose tip, bottom lip), and predict with the two merged by "
                      "keypoint (the two annotation schemes of training.csv apart)."),
    train_option("--folds", "K-fold cross-validation: one run per fold (stratified by class, or by keypoint "
                            "scheme; fixed by --seed), out-of-fold predictions for every training row, the CV "
                            "score, and the folds' average to predict the test images.", type=click.IntRange(min=1)),
)
PREDICT = options(
    click.option("--tta", type=click.Choice(CHOICES["tta"]), default=None,
                 help="Test-time augmentation: none, flip (average with the mirror image) or multi (ten shifted "
                      "and mirrored views).  [default: what the run's recipe says]"),
)
RUN_HELP = "a folder name under data/runs/<slug>/ (see `run.py runs`), latest, or best (by validation score)"
RUN = click.option("--run", "run_name", default=defaults.RUN, help=f"Which run: {RUN_HELP}.")
