"""predict: batched inference on the test images with a trained run's model.

Keypoints come back in pixels through the scaler that scaled the targets, clipped to [0, 96].
`tta="flip"` also predicts on mirrored images and averages, un-mirroring keypoints (x -> 95 - x and
left/right columns swapped) before averaging.
"""
import numpy as np

from . import scale
from .fileio import load_arrays, read_json, save_arrays, write_json

PREDICTIONS = "predictions.npz"
TEST_METRICS = "test_metrics.json"


def outputs(run_dir):
    return [run_dir / PREDICTIONS, run_dir / TEST_METRICS]


def load_model(run_dir):
    from . import models
    from .train import MODEL

    return models.load_model(run_dir / MODEL, compile=False)


def run(competition, processed, run_dir, batch_size=256, tta="none"):
    model = load_model(run_dir)
    data = load_arrays(processed / scale.ARRAYS)
    images = data["test_x"]
    outputs = _predict(model, images, batch_size)
    if competition.task == "keypoints":
        scaler = scale.load_scaler(processed / scale.SCALER)
        keypoints = scaler.inverse_transform(outputs)
        if tta == "flip":
            keypoints = (keypoints + _unflipped_keypoints(model, images, scaler, batch_size)) / 2
        keypoints = np.clip(keypoints, 0, 96).astype(np.float32)
        save_arrays(run_dir / PREDICTIONS, keypoints=keypoints, image_ids=data["test_ids"])
        write_json(run_dir / TEST_METRICS, {})
        return {"test_rows": len(keypoints), "tta": tta}

    if tta == "flip":
        outputs = (outputs + _predict(model, images[:, :, ::-1], batch_size)) / 2
    classes = read_json(processed / scale.META)["classes"]
    save_arrays(run_dir / PREDICTIONS, probabilities=outputs.astype(np.float32), labels=outputs.argmax(1))
    metrics = test_accuracy(outputs.argmax(1), data["test_labels"], data["test_usage"])
    write_json(run_dir / TEST_METRICS, {**metrics, "classes": classes})
    return {"test_rows": len(outputs), "tta": tta, **metrics}


def _predict(model, images, batch_size):
    return np.asarray(model.predict(images, batch_size=batch_size, verbose=0), np.float32)


def _unflipped_keypoints(model, images, scaler, batch_size):
    from .augment import flip_keypoints

    mirrored = scaler.inverse_transform(_predict(model, images[:, :, ::-1], batch_size))
    return flip_keypoints(mirrored, images.shape[2])


def test_accuracy(predicted, labels, usage):
    """Accuracy on the labelled test rows, per Usage. PrivateTest is reported, never used to choose."""
    metrics = {}
    for name, code in (("public_test_accuracy", 1), ("private_test_accuracy", 2)):
        rows = (usage == code) & (labels >= 0)
        if rows.any():
            metrics[name] = float(np.mean(predicted[rows] == labels[rows]))
    return metrics
