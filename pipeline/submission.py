"""submission: turn a run's predictions into the competition's CSV.

Keypoints: one `RowId,Location` row per IdLookupTable row, in its order, each the predicted
coordinate of that row's FeatureName on that row's ImageId. Expressions: one FER2013 label per test
row, in the header of example_submission.csv when Kaggle shipped one ("Emotion" otherwise).
"""
import numpy as np

from .competitions import FER2013_CLASSES, FERPLUS_CLASSES, FERPLUS_TO_FER2013, KEYPOINT_COLUMNS
from .errors import PipelineError
from .fileio import load_arrays, read_json, write_text


def paths(competition, submissions, run_name):
    return [submissions / f"{competition.slug}-{run_name}.csv", submissions / f"{competition.slug}-latest.csv"]


def keypoints_csv(lookup, keypoints, image_ids):
    """lookup: frame RowId,ImageId,FeatureName; keypoints (n_images, 30) pixels; image_ids (n_images,)."""
    position = {int(image_id): i for i, image_id in enumerate(image_ids)}
    missing = sorted(set(lookup.ImageId) - set(position))
    if missing:
        raise PipelineError(f"IdLookupTable asks for ImageId {missing[0]}, which has no prediction")
    rows = lookup.ImageId.map(position).to_numpy()
    columns = lookup.FeatureName.map({name: i for i, name in enumerate(KEYPOINT_COLUMNS)}).to_numpy()
    locations = keypoints[rows, columns]
    body = "".join(f"{row_id},{location:.4f}\n" for row_id, location in zip(lookup.RowId.tolist(), locations.tolist()))
    return "RowId,Location\n" + body


def fer2013_labels(probabilities, classes):
    """FER2013 labels from class probabilities; FERPlus probabilities are mapped onto FER2013's 7
    classes (contempt has no FER2013 counterpart, so it never wins)."""
    if list(classes) == list(FER2013_CLASSES):
        return probabilities.argmax(axis=1)
    if list(classes) != list(FERPLUS_CLASSES):
        raise PipelineError(f"cannot map classes {classes} to FER2013 labels")
    fer = np.zeros((len(probabilities), len(FER2013_CLASSES)), probabilities.dtype)
    for ferplus, fer2013 in FERPLUS_TO_FER2013.items():
        fer[:, fer2013] = probabilities[:, ferplus]
    return fer.argmax(axis=1)


def expressions_csv(labels, header):
    """One label per test row; a two-column header gets a 1-based row id first."""
    columns = header.split(",")
    if len(columns) == 1:
        return header + "\n" + "".join(f"{label}\n" for label in labels.tolist())
    return header + "\n" + "".join(f"{i},{label}\n" for i, label in enumerate(labels.tolist(), start=1))


def run(competition, interim, run_dir, submissions, run_name):
    import pandas as pd

    from .predict import PREDICTIONS, PREDICTOR

    predictions = load_arrays(run_dir / PREDICTIONS)
    if competition.task == "keypoints":
        lookup = pd.read_csv(interim / "lookup.csv")
        text = keypoints_csv(lookup, predictions["keypoints"], predictions["image_ids"])
        rows = len(lookup)
    else:
        meta = read_json(interim / "meta.json")
        labels = fer2013_labels(predictions["probabilities"], read_json(run_dir / PREDICTOR)["classes"])
        text = expressions_csv(labels, meta["submission_header"])
        rows = len(labels)
    named, latest = paths(competition, submissions, run_name)
    write_text(named, text)
    write_text(latest, text)
    return {"rows": rows, "file": str(named)}
