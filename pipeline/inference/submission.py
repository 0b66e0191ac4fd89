"""submission: turn a run's predictions into the competition's CSV.

Keypoints: one `RowId,Location` row per IdLookupTable row, in its order, each the predicted
coordinate of that row's FeatureName on that row's ImageId. Expressions: one FER2013 label per test
row, in the header of example_submission.csv when Kaggle shipped one ("Emotion" otherwise).
"""
import numpy as np
import pandas as pd

from pipeline.core.competitions import (FER2013_CLASSES, FERPLUS_CLASSES, FERPLUS_TO_FER2013, KEYPOINT_COLUMNS,
                                        KEYPOINTS_HEADER)
from pipeline.core.errors import PipelineError
from pipeline.core.fileio import read_json, write_text
from pipeline.core.layout import LOOKUP, META, submission_paths


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
    return KEYPOINTS_HEADER + "\n" + body


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


def run(competition, interim, run, submissions):
    """Write `run`'s (a RunDir's) predictions as the competition's CSV, named for the run and as -latest."""
    predictions = run.predictions()
    if competition.task == "keypoints":
        lookup = pd.read_csv(interim / LOOKUP)
        text = keypoints_csv(lookup, predictions["keypoints"], predictions["image_ids"])
        rows = len(lookup)
    else:
        meta = read_json(interim / META)
        labels = fer2013_labels(predictions["probabilities"], run.classes)
        text = expressions_csv(labels, meta["submission_header"])
        rows = len(labels)
    named, latest = submission_paths(competition, submissions, run.name)
    write_text(named, text)
    write_text(latest, text)
    return {"rows": rows, "file": str(named)}
