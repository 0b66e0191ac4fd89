"""predict: batched inference on the test images with a trained run (the predict stage).

Keypoints come back in pixels, clipped to the image; expressions as class probabilities, scored
against the test rows' labels per Usage (PublicTest, PrivateTest: reported, never used to choose).
Test-time augmentation is the run's own unless asked otherwise (inference/tta.py).
"""
import hashlib

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
    labels (every face whose most voted column is an emotion), as `<key>_plurality`. Each also over
    the test faces with no pixel-for-pixel copy in Training (`<key>_unseen`, with the rows counted
    as `<usage>_unseen_rows`): 288 of PrivateTest's 3,589 faces and 280 of PublicTest's have one,
    which a model can answer from memory."""
    usage = data["test_usage"]
    unseen = ~copied_in(data["test_x"], data["train_x"])
    label_sets = [("", data["test_labels"])]
    if "test_plurality_labels" in data:
        label_sets.append(("_plurality", data["test_plurality_labels"]))
    metrics = {}
    for suffix, labels in label_sets:
        metrics.update({key + suffix: value for key, value in test_accuracy(predicted, labels, usage).items()})
        metrics.update({key + suffix + "_unseen": value for key, value in
                        test_accuracy(predicted[unseen], labels[unseen], usage[unseen]).items()})
    for name, code in (("public_test", PUBLIC_TEST), ("private_test", PRIVATE_TEST)):
        if (usage == code).any():
            metrics[f"{name}_unseen_rows"] = int(np.sum(unseen & (usage == code)))
    return metrics


def copied_in(images, reference):
    """(n,) bool: which of `images` equal some image of `reference` in every pixel."""
    def digest(image):
        return hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).digest()

    known = {digest(image) for image in reference}
    return np.array([digest(image) in known for image in images], dtype=bool)


def test_accuracy(predicted, labels, usage):
    """Accuracy on the labelled test rows, per Usage. PrivateTest is reported, never used to choose."""
    metrics = {}
    for name, code in (("public_test_accuracy", PUBLIC_TEST), ("private_test_accuracy", PRIVATE_TEST)):
        rows = (usage == code) & (labels >= 0)
        if rows.any():
            metrics[name] = float(np.mean(predicted[rows] == labels[rows]))
    return metrics
