"""Facts about the two competitions: slugs, files, columns, classes. Data, not logic."""
from dataclasses import dataclass

KEYPOINT_NAMES = (
    "left_eye_center", "right_eye_center",
    "left_eye_inner_corner", "left_eye_outer_corner",
    "right_eye_inner_corner", "right_eye_outer_corner",
    "left_eyebrow_inner_end", "left_eyebrow_outer_end",
    "right_eyebrow_inner_end", "right_eyebrow_outer_end",
    "nose_tip",
    "mouth_left_corner", "mouth_right_corner",
    "mouth_center_top_lip", "mouth_center_bottom_lip",
)
# The 30 target columns of training.csv, in Kaggle's order: x then y for each keypoint.
KEYPOINT_COLUMNS = tuple(f"{name}_{axis}" for name in KEYPOINT_NAMES for axis in "xy")
# The four keypoints that most partially labelled training rows (and the 8-feature test images) carry.
PARTIAL_KEYPOINTS = ("left_eye_center", "right_eye_center", "nose_tip", "mouth_center_bottom_lip")
PARTIAL_COLUMNS = tuple(KEYPOINT_COLUMNS.index(f"{name}_{axis}") for name in PARTIAL_KEYPOINTS for axis in "xy")


def _mirror(name):
    return name.replace("left", "@").replace("right", "left").replace("@", "right")


# Column index pairs that swap when an image is flipped horizontally.
FLIP_PAIRS = tuple(
    (KEYPOINT_COLUMNS.index(column), KEYPOINT_COLUMNS.index(_mirror(column)))
    for column in KEYPOINT_COLUMNS
    if "left" in column
)

FER2013_CLASSES = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
FERPLUS_CLASSES = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
FERPLUS_VOTE_COLUMNS = FERPLUS_CLASSES + ("unknown", "NF")


def label_set(classes):
    """The --labels value that gives an expressions run these classes: "ferplus" or "fer2013"."""
    return "ferplus" if list(classes) == list(FERPLUS_CLASSES) else "fer2013"
# FERPlus class index -> FER2013 class index (contempt has no FER2013 counterpart).
FERPLUS_TO_FER2013 = {0: 6, 1: 3, 2: 5, 3: 4, 4: 0, 5: 1, 6: 2}
USAGES = ("Training", "PublicTest", "PrivateTest")
# FER2013's Usage as the processed arrays store it (test_usage): the index in USAGES.
TRAINING, PUBLIC_TEST, PRIVATE_TEST = range(len(USAGES))
# The submission files' headers: keypoints always; expressions unless example_submission.csv names another.
KEYPOINTS_HEADER = "RowId,Location"
EXPRESSIONS_HEADER = "Emotion"
# The validation score each task is judged by, and whether higher or lower is better.
VALIDATION_METRIC = {"keypoints": ("val_rmse", "min"), "expressions": ("val_accuracy", "max")}


@dataclass(frozen=True)
class Competition:
    task: str            # the --task name
    slug: str            # Kaggle competition slug
    image_size: int      # square grayscale images
    required_files: tuple  # at least one of these layouts must be present after download
    other_files: tuple = ()  # files the competition may also ship, kept when imported

    @property
    def known_files(self):
        return {name for layout in self.required_files for name in layout} | set(self.other_files)

    @property
    def rules_url(self):
        return f"https://www.kaggle.com/competitions/{self.slug}/rules"


KEYPOINTS = Competition(
    task="keypoints",
    slug="facial-keypoints-detection",
    image_size=96,
    required_files=(("training.csv", "test.csv", "IdLookupTable.csv"),),
    other_files=("SampleSubmission.csv",),
)
EXPRESSIONS = Competition(
    task="expressions",
    slug="challenges-in-representation-learning-facial-expression-recognition-challenge",
    image_size=48,
    required_files=(("fer2013.csv",), ("icml_face_data.csv",), ("train.csv", "test.csv")),
    other_files=("fer2013new.csv", "example_submission.csv"),
)
COMPETITIONS = {c.task: c for c in (KEYPOINTS, EXPRESSIONS)}


def tasks_for(option):
    """Expand a --task value ("keypoints", "expressions" or "both") into competitions."""
    return list(COMPETITIONS.values()) if option == "both" else [COMPETITIONS[option]]
