import numpy as np
import pandas as pd
import pytest

from pipeline.inference import submission
from pipeline.core.competitions import FER2013_CLASSES, FERPLUS_CLASSES, KEYPOINT_COLUMNS
from pipeline.core.errors import PipelineError


def lookup_frame():
    rows = [(2, name) for name in KEYPOINT_COLUMNS] + [(1, "nose_tip_x"), (1, "left_eye_center_y")]
    frame = pd.DataFrame(rows, columns=["ImageId", "FeatureName"])
    frame.insert(0, "RowId", np.arange(1, len(frame) + 1))
    return frame


def test_keypoints_follow_the_lookup_table_order():
    image_ids = np.array([1, 2])
    keypoints = np.stack([np.arange(30) + 0.5, np.arange(30) + 40.25]).astype(np.float32)
    text = submission.keypoints_csv(lookup_frame(), keypoints, image_ids)
    written = pd.read_csv(pd.io.common.StringIO(text))
    assert list(written.columns) == ["RowId", "Location"]
    assert written.RowId.tolist() == list(range(1, 33))
    np.testing.assert_allclose(written.Location[:30], np.arange(30) + 40.25)   # image 2, all 30
    nose_x, left_eye_y = KEYPOINT_COLUMNS.index("nose_tip_x"), KEYPOINT_COLUMNS.index("left_eye_center_y")
    np.testing.assert_allclose(written.Location[30:], [nose_x + 0.5, left_eye_y + 0.5])


def test_missing_prediction_is_an_error():
    with pytest.raises(PipelineError, match="ImageId 1"):
        submission.keypoints_csv(lookup_frame(), np.zeros((1, 30)), np.array([2]))


def test_ferplus_probabilities_map_to_fer2013_labels():
    probabilities = np.zeros((3, 8), np.float32)
    probabilities[0, FERPLUS_CLASSES.index("happiness")] = 1
    probabilities[1, FERPLUS_CLASSES.index("anger")] = 1
    probabilities[2, FERPLUS_CLASSES.index("contempt")] = 0.6   # contempt cannot win...
    probabilities[2, FERPLUS_CLASSES.index("sadness")] = 0.4    # ...the next best FER2013 class does
    labels = submission.fer2013_labels(probabilities, FERPLUS_CLASSES)
    assert [FER2013_CLASSES[i] for i in labels] == ["Happy", "Angry", "Sad"]


def test_expressions_header_follows_example():
    labels = np.array([3, 0, 6])
    assert submission.expressions_csv(labels, "Emotion") == "Emotion\n3\n0\n6\n"
    assert submission.expressions_csv(labels, "Id,Emotion") == "Id,Emotion\n1,3\n2,0\n3,6\n"
