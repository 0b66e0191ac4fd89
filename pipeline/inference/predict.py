"""predict: batched inference on the test images with a trained run (the predict stage).

Keypoints come back in pixels, clipped to the image; expressions as class probabilities, scored
against the test rows' labels per Usage (PublicTest, PrivateTest: reported, never used to choose).
Test-time augmentation is the run's own unless asked otherwise (inference/tta.py).
"""
import numpy as np

from pipeline.core import defaults
from pipeline.core.competitions import KEYPOINTS, PRIVATE_TEST, PUBLIC_TEST, label_set
from pipeline.core.errors import PipelineError
from pipeline.core.fileio import load_arrays, read_json, save_arrays, write_json
from pipeline.core.layout import ARRAYS, META, PREDICTIONS, TEST_METRICS
from pipeline.inference.tta import predict_keypoints, predict_probabilities


def run(competition, processed, run, batch_size=defaults.PREDICT_BATCH_SIZE, tta=None):
    """Predict `processed`'s test images with `run` (a RunDir); `tta` None means the run's own."""
    tta = tta or run.tta
    models = run.load_models()
    data = load_arrays(processed / ARRAYS)
    images = data["test_x"]
    if competition.task == "keypoints":
        keypoints = predict_keypoints(models, images, run.scaling, batch_size, tta)
        keypoints = np.clip(keypoints, 0, KEYPOINTS.image_size)
        save_arrays(run.path / PREDICTIONS, keypoints=keypoints.astype(np.float32), image_ids=data["test_ids"])
        write_json(run.path / TEST_METRICS, {})
        return {"test_rows": len(keypoints), "tta": tta}

    check_same_labels(run, processed)
    probabilities = predict_probabilities(models, images, batch_size, tta)
    predicted = probabilities.argmax(1)
    save_arrays(run.path / PREDICTIONS, probabilities=probabilities, labels=predicted)
    metrics = expression_test_metrics(predicted, data)
    write_json(run.path / TEST_METRICS, {**metrics, "classes": list(run.classes), "tta": tta})
    return {"test_rows": len(probabilities), "tta": tta, **metrics}


def check_same_labels(run, processed):
    """Stop when an expressions run and the processed data have different classes: a FER2013 run
    scored against FERPlus labels (or the reverse) would report nonsense."""
    data_classes = read_json(processed / META)["classes"]
    if list(run.classes) != list(data_classes):
        raise PipelineError(f"run {run.name} was trained on {run.labels} labels, but the cleaned "
                            f"data holds {label_set(data_classes)} labels; run `python run.py clean --task "
                            f"expressions --labels {run.labels}` and `scale` first, or choose "
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
    for name, code in (("public_test_accuracy", PUBLIC_TEST), ("private_test_accuracy", PRIVATE_TEST)):
        rows = (usage == code) & (labels >= 0)
        if rows.any():
            metrics[name] = float(np.mean(predicted[rows] == labels[rows]))
    return metrics
