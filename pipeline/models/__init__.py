"""The model zoo: one module per family, each exposing `build(input_shape, n_outputs, **options)`.

Every builder returns an uncompiled `keras.Model` taking float32 images in [0, 1] of shape
(96, 96, 1) for keypoints or (48, 48, 1) for expressions. Keypoints models end in a linear
Dense(n_outputs) (or a soft-argmax); expression models end in a softmax over n_outputs classes.
The head always computes in float32 (`dtype="float32"`): under mixed precision a bfloat16 head
would round coordinates on [-1, 1] to about 0.2 px and its softmax would lose the small classes.

Importing this package is cheap: a family's module (and with it Keras) is imported only when one
of its models is built, so the command line can list names and defaults without loading TensorFlow.

Public: MODELS, get_spec, models_for, build_model, load_model (with the custom layers, losses and
schedules a saved model refers to: layers.py, losses.py, schedules.py; adam.py, conv.py), float32_copy, describe,
INPUT_SHAPES.
"""
import importlib
import inspect
from dataclasses import dataclass

from pipeline.core.competitions import COMPETITIONS, FER2013_CLASSES, KEYPOINT_COLUMNS
from pipeline.core.errors import PipelineError

# The input each task's models are built for, and its usual number of outputs.
INPUT_SHAPES = {task: (c.image_size, c.image_size, 1) for task, c in COMPETITIONS.items()}
N_OUTPUTS = {"keypoints": len(KEYPOINT_COLUMNS), "expressions": len(FER2013_CLASSES)}


@dataclass(frozen=True)
class ModelSpec:
    module: str     # module under pipeline.models that holds the family's builder
    task: str       # "keypoints" | "expressions"
    summary: str    # one line for `run.py models`
    function: str = "build"
    options: tuple = ()                     # (name, value) pairs this model passes its family's builder
    reference: str = "REFERENCE_PARAMS"     # the module's hand count of this model's weights

    @property
    def family(self):
        return importlib.import_module(f"{__name__}.{self.module}")

    def build(self, input_shape, n_outputs, **options):
        return getattr(self.family, self.function)(input_shape, n_outputs, **{**options, **dict(self.options)})

    @property
    def reference_params(self):
        """Parameter count documented in the module (for the task's default input shape)."""
        return getattr(self.family, self.reference)


MODELS = {
    "kaggle_cnn": ModelSpec(
        "keypoints_cnn", "keypoints",
        "reference convnet: 3 conv/pool stages, dense 500-500, dropout"),
    "resnet_keypoints": ModelSpec(
        "resnet_keypoints", "keypoints",
        "small residual net: coordinate channels, BN, 4 stride-2 stages, global pooling"),
    "heatmap_keypoints": ModelSpec(
        "heatmap_keypoints", "keypoints",
        "residual encoder, U-Net decoder to 24x24 heatmaps, soft-argmax to coordinates"),
    "lenet7": ModelSpec(
        "lenet7", "expressions",
        "LeNet-style baseline: 3 conv/pool stages, 2 dense layers"),
    "compact_vgg": ModelSpec(
        "compact_vgg", "expressions",
        "VGG-style for 2 CPU cores: 3x3 stem, double-conv stages 32-64-128 at 24/12/6 px, global pooling"),
    "compact_vgg_wide": ModelSpec(
        "compact_vgg", "expressions",
        "compact_vgg at twice the width: stem 32, stages 64-128-256 (4x its FLOPs, for bfloat16 CPUs)",
        options=(("stem", 32), ("widths", (64, 128, 256))), reference="WIDE_REFERENCE_PARAMS"),
    "mini_xception": ModelSpec(
        "mini_xception", "expressions",
        "Arriaga et al. mini-Xception: separable residual modules, ~60k weights"),
    "densenet": ModelSpec(
        "densenet", "expressions",
        "DenseNet-BC, blocks 2-4-8-4, growth 32"),
    "cliquenet": ModelSpec(
        "cliquenet", "expressions",
        "CliqueNet: 3 clique blocks of 5x36, shared-weight stage II, attention transitions"),
    "vgg": ModelSpec(
        "vgg", "expressions",
        "VGG-style from scratch: 4 double-conv stages 64-512 with BN, 2 dense layers"),
    "vgg16_transfer": ModelSpec(
        "vgg16_transfer", "expressions",
        "frozen ImageNet VGG16 base with a 256-256-128 dense head"),
}


def get_spec(name):
    try:
        return MODELS[name]
    except KeyError:
        raise PipelineError(
            f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}") from None


def models_for(task):
    """Names of the models of one task, in the order of MODELS."""
    return [name for name, spec in MODELS.items() if spec.task == task]


def accepted_options(name, options):
    """The subset of `options` that the builder of `name` takes (the rest belong to other models)."""
    spec = get_spec(name)
    parameters = inspect.signature(getattr(spec.family, spec.function)).parameters
    return {key: value for key, value in options.items() if key in parameters}


def build_model(name, input_shape, n_outputs, **options):
    """Build the uncompiled model `name`, passing only the options its builder accepts."""
    spec = get_spec(name)
    return spec.build(tuple(input_shape), int(n_outputs), **accepted_options(name, options))


def load_model(path, compile=True):
    """A saved model.keras, with the custom layers, losses, schedules and optimizers it may refer to
    registered first."""
    # Keras, here and in describe: this package's names must list without loading TensorFlow.
    import keras

    # importing them registers them
    from pipeline.models import adam, batchnorm, conv, layers, losses, schedules  # noqa: F401

    return keras.saving.load_model(path, compile=compile)


def merged_specialists(base, taken, columns):
    """One model answering like `base` except in `columns`, where `taken` answers (keypoint
    specialists, training/specialists.py): every consumer of a run's models (predict, TTA, export,
    photos, the server) then treats a specialists run like any other."""
    import keras  # see load_model

    from pipeline.models.layers import TakeColumns  # Keras: see load_model

    base.name, taken.name = "base", "taken"   # the two are often one architecture: names must differ
    images = keras.Input(base.input_shape[1:], name="images")
    outputs = TakeColumns(columns, name="take_columns")([base(images), taken(images)])
    return keras.Model(images, outputs, name="keypoint_specialists")


def float32_copy(model):
    """`model` rebuilt with every layer computing in float32, with the same weights (which mixed
    precision keeps in float32 anyway). For exports: ONNX Runtime and most servers have no
    bfloat16 convolutions, and a model trained in mixed precision otherwise carries its casts."""
    import keras  # see load_model

    def float32_policies(value):
        if isinstance(value, dict):
            if value.get("class_name") == "DTypePolicy" and value["config"]["name"].startswith("mixed_"):
                return {**value, "config": {**value["config"], "name": "float32"}}
            return {key: float32_policies(item) for key, item in value.items()}
        if isinstance(value, list):
            return [float32_policies(item) for item in value]
        return value

    copy = model.__class__.from_config(float32_policies(model.get_config()))
    copy.set_weights(model.get_weights())
    return copy


def describe(task=None):
    """[(name, task, parameters, summary)] for every model (of one task), built at the task's
    default input shape. vgg16_transfer is built untrained so that listing never downloads."""
    import keras  # see load_model

    rows = []
    for name, spec in MODELS.items():
        if task not in (None, "both", spec.task):
            continue
        model = build_model(name, INPUT_SHAPES[spec.task], N_OUTPUTS[spec.task], weights="none")
        rows.append((name, spec.task, model.count_params(), spec.summary))
        keras.backend.clear_session()   # keep memory flat while building the whole zoo
    return rows
