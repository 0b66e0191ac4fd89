"""export: a trained run as one model that answers in the competition's units, for serving.

The exported model takes `image`, float32 NHWC in [0, 1] (48x48x1 or 96x96x1), and returns
keypoints in pixels (x1, y1, x2, y2, ... in KEYPOINT_COLUMNS order: the run's scaling is a layer
of the model) or class probabilities (class names in metadata.json). An ensemble exports as one
model averaging its members. Test-time augmentation is left to the caller: it needs the images.

Formats, written to exports/<slug>/<run>/:
- keras: model.keras, always;
- savedmodel: saved_model/, a TensorFlow SavedModel with the signature `serving_default`
  (input `image`, output `keypoints` or `probabilities`); see pipeline/savedmodel.py;
- onnx: model.onnx, converted from the SavedModel (which stays) by tf2onnx and checked with
  onnxruntime; both must be installed (requirements-dev.txt has them).
"""
import importlib.util

import keras
import numpy as np

from pipeline.core import defaults
from pipeline.core.competitions import KEYPOINT_COLUMNS
from pipeline.core.errors import PipelineError
from pipeline.core.fileio import atomic_path, write_json
from pipeline.core.layout import EXPORT_METADATA as METADATA
from pipeline.core.layout import MODEL, ONNX_MODEL, SAVED_MODEL
from pipeline.models import float32_copy

FORMATS = defaults.EXPORT_FORMATS
# An export must give the Keras model's outputs to 1e-5, relative for pixels: float32 itself
# resolves 96 px only to 7.6e-6, and tf2onnx's reordered sums differ by about that.
CHECK_TOLERANCE = 1e-5


def output_name(task):
    return "keypoints" if task == "keypoints" else "probabilities"


def serving_model(run):
    """The run's model(s) as one Keras model: `image` in, pixels or probabilities out."""
    predictor = run.predictor
    task = run.task
    members = [float32_copy(member) for member in run.load_models()]   # mixed-precision runs too
    if len(members) > 1:
        for index, member in enumerate(members):   # one graph needs unique names; the members share one
            member.name = f"member{index}_{member.name}"
    image = keras.Input(tuple(predictor["input_shape"]), name="image")
    outputs = [member(image) for member in members]
    output = outputs[0] if len(outputs) == 1 else keras.layers.Average(name="ensemble_mean")(outputs)
    if task == "keypoints":
        # scaled in [-1, 1] -> pixels: (s + 1) / 2 * (high - low) + low = s * half + (low + half)
        low, high = (np.asarray(predictor["scaling"][k], np.float32) for k in ("low", "high"))
        half = (high - low) / 2
        output = keras.layers.Rescaling(half.tolist(), (low + half).tolist(), name="keypoints")(output)
    else:
        output = keras.layers.Identity(name="probabilities")(output)
    return keras.Model(image, output, name=f"{task}_{run.name}".replace("-", "_")), predictor


def metadata(run, predictor):
    task = predictor["task"]
    described = {
        "run": run.name, "task": task,
        "input": {"name": "image", "shape": [None, *predictor["input_shape"]], "dtype": "float32",
                  "range": [0.0, 1.0], "layout": "NHWC, grayscale"},
        "output": {"name": output_name(task)},
    }
    if task == "keypoints":
        described["output"].update(units="pixels", columns=list(KEYPOINT_COLUMNS))
    else:
        described["output"].update(classes=list(predictor["classes"]))
    described["params"] = run.params
    return described


def export(run, out_dir, formats=defaults.EXPORT):
    """Write the run's model in `formats` under `out_dir` and check each against the Keras model
    on random input. Returns a summary (formats written, the largest difference seen)."""
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise PipelineError(f"unknown export format {sorted(unknown)[0]!r}; choose from {', '.join(FORMATS)}")
    if "onnx" in formats:
        missing = [m for m in ("tf2onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
        if missing:
            raise PipelineError(f"--format onnx needs {' and '.join(missing)}: pip install tf2onnx onnxruntime")
    model, predictor = serving_model(run)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / METADATA, metadata(run, predictor))
    sample = np.random.default_rng(0).random((4, *predictor["input_shape"]), dtype=np.float32)
    expected = np.asarray(model.predict(sample, verbose=0))

    written, worst = ["keras"], 0.0
    with atomic_path(out_dir / MODEL, suffix=".keras") as tmp:
        model.save(tmp)
    if "savedmodel" in formats or "onnx" in formats:
        # TensorFlow, only when a SavedModel (or ONNX, made from one) is asked for: the JAX backend runs without it.
        from pipeline.inference import savedmodel

        savedmodel.write(model, predictor, output_name(predictor["task"]), out_dir / SAVED_MODEL,
                         extra_files={METADATA: out_dir / METADATA})
        if "savedmodel" in formats:
            worst = max(worst, _check("SavedModel", savedmodel.outputs(out_dir / SAVED_MODEL, sample), expected))
            written.append("savedmodel")
        if "onnx" in formats:
            savedmodel.to_onnx(out_dir / SAVED_MODEL, out_dir / ONNX_MODEL)
            worst = max(worst, _check("ONNX", onnx_outputs(out_dir / ONNX_MODEL, sample), expected))
            written.append("onnx")
    return {"formats": ",".join(written), "max_difference": worst, "folder": str(out_dir)}


def onnx_outputs(path, images):
    import onnxruntime  # optional: only `--format onnx` needs it (checked in export)

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images})[0]


def _check(what, outputs, expected):
    difference = np.abs(np.asarray(outputs) - expected)
    if not np.all(difference <= CHECK_TOLERANCE * (1 + np.abs(expected))):
        raise PipelineError(f"the {what} export differs from the Keras model by {difference.max():.3g} "
                            f"(allowed {CHECK_TOLERANCE} relative); not trusting it")
    return float(difference.max())
