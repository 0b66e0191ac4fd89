"""predict: batched inference on the test images with a trained run.

A run folder is self-contained: predictor.json says what the model's outputs mean (the keypoint
scaling as plain numbers, or the class names) and which input it takes, so predictions never depend
on what `scale` wrote since the run was trained. Keypoints come back in pixels, clipped to [0, 96].
Test-time augmentation averages over views of each image (TTA_VIEWS): "flip" adds the mirror
image, "multi" also 2-pixel shifts; keypoints are moved back and un-mirrored first (x -> 95 - x,
left/right columns swapped).
"""
import numpy as np

from . import scale
from .errors import PipelineError
from .fileio import load_arrays, read_json, save_arrays, write_json

PREDICTOR = "predictor.json"
PREDICTIONS = "predictions.npz"
TEST_METRICS = "test_metrics.json"


def outputs(run_dir):
    return [run_dir / PREDICTIONS, run_dir / TEST_METRICS]


def predictor_description(task, input_shape, classes=None, scaling=None):
    """What predictor.json holds: everything besides the model that turns outputs into answers."""
    description = {"task": task, "input_shape": [int(d) for d in input_shape]}
    if task == "keypoints":
        description["scaling"] = scaling.to_json()
    else:
        description["classes"] = list(classes)
    return description


def load_models(run_dirs):
    """The trained models of run folders (an ensemble's members, or one run)."""
    from . import models
    from .train import MODEL

    return [models.load_model(run_dir / MODEL, compile=False) for run_dir in run_dirs]


def predict_batches(model, images, batch_size):
    """Model outputs for (n, h, w, c) images (uint8, or float32 in [0, 1]) as float32, run in batches
    of exactly `batch_size`.

    The last partial batch is padded with copies of its final image and the copies' outputs dropped:
    every call sees one input shape, so the prediction function is traced once and no kernel meets
    an odd leftover batch size (see pipeline/models/layers.py on oneDNN). Inference mode makes each
    image's output independent of its batch-mates.
    """
    images = scale.to_unit(images)
    n = len(images)
    full = n - n % batch_size
    parts = []
    if full:
        parts.append(model.predict(images[:full], batch_size=batch_size, verbose=0))
    if full < n:
        tail = images[full:]
        padded = np.concatenate([tail, np.repeat(tail[-1:], batch_size - len(tail), axis=0)])
        parts.append(model.predict(padded, batch_size=batch_size, verbose=0)[:len(tail)])
    return np.concatenate(parts).astype(np.float32)


# Test-time augmentation: the views of each image whose predictions are averaged, as (mirrored, dx,
# dy) in pixels. "multi" is ten views, like ten-crop TTA: the image and its mirror, each as it is and
# moved 2 px left, right, up and down.
TTA_VIEWS = {
    "none": [(False, 0, 0)],
    "flip": [(False, 0, 0), (True, 0, 0)],
    "multi": [(mirrored, dx, dy) for mirrored in (False, True)
              for dx, dy in ((0, 0), (2, 0), (-2, 0), (0, 2), (0, -2))],
}


def view(images, mirrored, dx, dy):
    """(n, h, w, c) images mirrored, then moved right by dx and down by dy pixels (the border
    pixels repeat into the gap)."""
    if mirrored:
        images = images[:, :, ::-1]
    if dx or dy:
        pad = max(abs(dx), abs(dy))
        height, width = images.shape[1:3]
        padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
        images = padded[:, pad - dy:pad - dy + height, pad - dx:pad - dx + width]
    return np.ascontiguousarray(images)


def predict_keypoints(models, images, scaling, batch_size, tta="none"):
    """(n, 30) keypoints in pixels (not clipped), averaged over `models` (a list) and the TTA views,
    each view's keypoints moved back and un-mirrored first."""
    from .augment import flip_keypoints

    def one(model, mirrored, dx, dy):
        keypoints = scaling.inverse_transform(predict_batches(model, view(images, mirrored, dx, dy), batch_size))
        keypoints[:, 0::2] -= dx
        keypoints[:, 1::2] -= dy
        return flip_keypoints(keypoints, images.shape[2]) if mirrored else keypoints

    return np.mean([one(model, *v) for model in models for v in TTA_VIEWS[tta]], axis=0)


def predict_probabilities(models, images, batch_size, tta="none"):
    """(n, classes) class probabilities, averaged over `models` (a list) and the TTA views."""
    return np.mean([predict_batches(model, view(images, *v), batch_size)
                    for model in models for v in TTA_VIEWS[tta]], axis=0)


def run(competition, processed, run_dir, batch_size=256, tta=None):
    """Predict `processed`'s test images with the run in `run_dir`; `tta` None means the run's own."""
    from .ensemble import member_dirs
    from .recipes import run_tta

    predictor = read_json(run_dir / PREDICTOR)
    tta = tta or run_tta(competition.task, read_json(run_dir / "params.json"))
    models = load_models(member_dirs(run_dir))
    data = load_arrays(processed / scale.ARRAYS)
    images = data["test_x"]
    if competition.task == "keypoints":
        scaling = scale.KeypointScaling.from_json(predictor["scaling"])
        keypoints = np.clip(predict_keypoints(models, images, scaling, batch_size, tta), 0, 96)
        save_arrays(run_dir / PREDICTIONS, keypoints=keypoints.astype(np.float32), image_ids=data["test_ids"])
        write_json(run_dir / TEST_METRICS, {})
        return {"test_rows": len(keypoints), "tta": tta}

    check_same_labels(run_dir, processed)
    probabilities = predict_probabilities(models, images, batch_size, tta)
    predicted = probabilities.argmax(1)
    save_arrays(run_dir / PREDICTIONS, probabilities=probabilities, labels=predicted)
    metrics = expression_test_metrics(predicted, data)
    write_json(run_dir / TEST_METRICS, {**metrics, "classes": predictor["classes"], "tta": tta})
    return {"test_rows": len(probabilities), "tta": tta, **metrics}


def check_same_labels(run_dir, processed):
    """Stop when an expressions run and the processed data have different classes: a FER2013 run
    scored against FERPlus labels (or the reverse) would report nonsense."""
    from .competitions import label_set

    run_classes = read_json(run_dir / PREDICTOR)["classes"]
    data_classes = read_json(processed / scale.META)["classes"]
    if list(run_classes) != list(data_classes):
        raise PipelineError(f"run {run_dir.name} was trained on {label_set(run_classes)} labels, but the cleaned "
                            f"data holds {label_set(data_classes)} labels; run `python run.py clean --task "
                            f"expressions --labels {label_set(run_classes)}` and `scale` first, or choose "
                            "another --run")


def expression_test_metrics(predicted, data):
    """test_accuracy against the processed arrays' test labels; for FERPlus also against the plurality
    labels (every face whose most voted column is an emotion), as `<key>_plurality`."""
    metrics = test_accuracy(predicted, data["test_labels"], data["test_usage"])
    if "test_plurality_labels" in data:
        plurality = test_accuracy(predicted, data["test_plurality_labels"], data["test_usage"])
        metrics.update({f"{key}_plurality": value for key, value in plurality.items()})
    return metrics


def test_accuracy(predicted, labels, usage):
    """Accuracy on the labelled test rows, per Usage. PrivateTest is reported, never used to choose."""
    metrics = {}
    for name, code in (("public_test_accuracy", 1), ("private_test_accuracy", 2)):
        rows = (usage == code) & (labels >= 0)
        if rows.any():
            metrics[name] = float(np.mean(predicted[rows] == labels[rows]))
    return metrics
