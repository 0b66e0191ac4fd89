import numpy as np
import pandas as pd

from pipeline.data import sample
from pipeline.core.competitions import FERPLUS_VOTE_COLUMNS, KEYPOINT_COLUMNS, PARTIAL_KEYPOINTS


def test_keypoints_files_have_kaggle_layout(keypoints_raw):
    train = pd.read_csv(keypoints_raw / "training.csv")
    assert list(train.columns) == list(KEYPOINT_COLUMNS) + ["Image"]
    assert train.Image.str.split().map(len).eq(96 * 96).all()
    test = pd.read_csv(keypoints_raw / "test.csv")
    assert list(test.columns) == ["ImageId", "Image"]
    lookup = pd.read_csv(keypoints_raw / "IdLookupTable.csv")
    assert list(lookup.columns) == ["RowId", "ImageId", "FeatureName", "Location"]
    assert lookup.RowId.tolist() == list(range(1, len(lookup) + 1))
    assert lookup.Location.isna().all()
    submission = pd.read_csv(keypoints_raw / "SampleSubmission.csv")
    assert list(submission.columns) == ["RowId", "Location"] and len(submission) == len(lookup)


def test_keypoints_missingness_mimics_the_real_data(keypoints_raw):
    train = pd.read_csv(keypoints_raw / "training.csv")
    complete = train[list(KEYPOINT_COLUMNS)].notna().all(axis=1)
    assert 0.1 < complete.mean() < 0.5
    partial_columns = {f"{k}_{a}" for k in PARTIAL_KEYPOINTS for a in "xy"}
    partial = train[~complete][list(KEYPOINT_COLUMNS)]
    assert set(partial.columns[partial.notna().all()]) == partial_columns
    assert partial.drop(columns=list(partial_columns)).isna().all().all()


def test_lookup_asks_for_8_or_30_features(keypoints_raw):
    lookup = pd.read_csv(keypoints_raw / "IdLookupTable.csv")
    per_image = lookup.groupby("ImageId").FeatureName.apply(list)
    assert set(per_image.map(len)) == {8, 30}
    assert per_image.iloc[0] == list(KEYPOINT_COLUMNS)
    eight = per_image[per_image.map(len) == 8].iloc[0]
    assert {name.rsplit("_", 1)[0] for name in eight} == set(PARTIAL_KEYPOINTS)


def test_keypoints_sit_on_drawn_features():
    images, keypoints = sample.keypoints_arrays(20, np.random.default_rng(0))
    points = keypoints.reshape(20, 15, 2).round().astype(int)
    rows = np.arange(20)
    pupil = images[rows, points[:, 0, 1], points[:, 0, 0]].astype(int)   # left eye centre
    cheek = images[rows, points[:, 10, 1] - 6, points[:, 10, 0] + 14].astype(int)  # beside the nose
    assert (pupil < cheek - 30).mean() > 0.9


def test_expressions_files_align_with_ferplus(expressions_raw):
    fer = pd.read_csv(expressions_raw / "fer2013.csv")
    assert list(fer.columns) == ["emotion", "pixels", "Usage"]
    assert set(fer.Usage) == {"Training", "PublicTest", "PrivateTest"}
    assert fer.emotion.between(0, 6).all()
    assert fer.pixels.str.split().map(len).eq(48 * 48).all()
    plus = pd.read_csv(expressions_raw / "fer2013new.csv")
    assert list(plus.columns) == ["Usage", "Image name", *FERPLUS_VOTE_COLUMNS]
    assert len(plus) == len(fer) and (plus.Usage == fer.Usage).all()


def test_same_seed_same_files(tmp_path):
    from pipeline.core.competitions import EXPRESSIONS

    sizes = sample.SampleSizes(10, 10, 30)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        sample.write_sample(EXPRESSIONS, tmp_path / name, seed=3, sizes=sizes)
    assert (tmp_path / "a" / "fer2013.csv").read_bytes() == (tmp_path / "b" / "fer2013.csv").read_bytes()
