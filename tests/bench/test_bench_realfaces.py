"""The real-face keypoints replica, built here from generated stand-ins for the teacher labels."""
import numpy as np
import pandas as pd

from pipeline.bench import realfaces
from pipeline.core.competitions import KEYPOINT_COLUMNS, PARTIAL_KEYPOINTS


def teacher_like(n=40, seed=0):
    rng = np.random.default_rng(seed)
    faces = rng.integers(0, 256, (n, 96, 96), dtype=np.uint8)
    keypoints = rng.uniform(10, 86, (n, 30)).astype(np.float32)
    usage = np.array([0] * 30 + [1] * 10, np.int8)
    box_method = rng.integers(0, 4, n).astype(np.int8)
    pixels48 = rng.integers(0, 256, (n, 2304), dtype=np.uint8)
    pixels48[31] = pixels48[3]   # a PublicTest face that is a copy of a Training face
    return faces, keypoints, usage, box_method, pixels48


def test_replica_has_the_competitions_layout_and_no_leaked_test_faces(monkeypatch):
    monkeypatch.setattr(realfaces, "TRAINING_ROWS", 20)
    monkeypatch.setattr(realfaces, "COMPLETE_ROWS", 6)
    faces, keypoints, usage, box_method, pixels48 = teacher_like()
    training, test, lookup, solution = realfaces.replica(faces, keypoints, usage, box_method, pixels48)

    assert list(training.columns) == [*KEYPOINT_COLUMNS, "Image"] and len(training) == 20
    complete = training[list(KEYPOINT_COLUMNS)].notna().all(axis=1)
    assert complete.sum() == 6
    partial_columns = [f"{name}_{axis}" for name in PARTIAL_KEYPOINTS for axis in "xy"]
    assert training.loc[~complete, partial_columns].notna().all().all()
    assert training.loc[~complete].drop(columns=[*partial_columns, "Image"]).isna().all().all()
    assert all(len(image.split()) == 96 * 96 for image in training.Image)

    assert test.ImageId.tolist() == list(range(1, 10))   # 10 PublicTest faces, one a copy
    assert len(lookup) == len(solution) == 9 * 30
    assert lookup.FeatureName.tolist()[:30] == list(KEYPOINT_COLUMNS)
    first = next(i for i in np.flatnonzero(usage == 1) if i != 31)
    np.testing.assert_allclose(solution.Location[:30], np.round(keypoints[first], 4), atol=1e-4)


def test_score_is_kaggles_rmse_overall_and_on_upright_faces():
    solution = pd.DataFrame({"RowId": [1, 2, 3, 4], "Location": [10.0, 20.0, 30.0, 40.0],
                             "BoxMethod": [0, 0, 3, 3]})
    submission = pd.DataFrame({"RowId": [4, 3, 2, 1], "Location": [44.0, 30.0, 20.0, 13.0]})
    scores = realfaces.score(solution, submission)
    assert scores["rmse"] == np.sqrt((9 + 16) / 4) and scores["rmse_upright"] == np.sqrt(9 / 2)


def write_shared(folder, n=12, seed=0):
    """A stand-in for ../shared/data: the teacher's npz and the FER2013 arrays, xz-compressed."""
    import io
    import lzma

    rng = np.random.default_rng(seed)
    (folder / "fer2013-keypoints").mkdir(parents=True)
    (folder / realfaces.FER_SLUG).mkdir()
    teacher = {"index": np.arange(n, dtype=np.int32)[::-1].copy(),
               "keypoints": rng.uniform(10, 86, (n, 30)).astype(np.float32),
               "keypoints_flip": rng.uniform(10, 86, (n, 30)).astype(np.float32),
               "usage": np.array([0, 1] * (n // 2), np.int8),
               "box_method": np.array([0, 0, 3] * (n // 3), np.int8)}
    np.savez(folder / "fer2013-keypoints" / "fer2013-keypoints-dev.npz", **teacher)
    arrays = io.BytesIO()
    np.savez(arrays, pixels=rng.integers(0, 256, (n, 48, 48), dtype=np.uint8))
    (folder / realfaces.FER_SLUG / "fer2013-arrays.npz.xz").write_bytes(lzma.compress(arrays.getvalue()))
    return teacher


def test_teacher_keeps_upright_faces_inside_the_image_with_both_labellings_averaged_unless_all_faces(tmp_path):
    teacher = write_shared(tmp_path)
    teacher["keypoints_flip"][0, 3] = -100  # its mean falls outside the image: dropped
    np.savez(tmp_path / "fer2013-keypoints" / "fer2013-keypoints-dev.npz", **teacher)
    upright = (teacher["box_method"] == 0) & (np.arange(len(teacher["index"])) != 0)

    faces, keypoints, usage, box_method, pixels48 = realfaces.load_teacher(tmp_path)
    assert len(faces) == upright.sum() and (box_method == 0).all() and faces.shape[1:] == (96, 96)
    np.testing.assert_allclose(keypoints, (teacher["keypoints"] + teacher["keypoints_flip"])[upright] / 2)
    np.testing.assert_array_equal(usage, teacher["usage"][upright])

    faces, keypoints, *_ = realfaces.load_teacher(tmp_path, all_faces=True)
    assert len(faces) == len(teacher["index"])
    np.testing.assert_array_equal(keypoints, teacher["keypoints"])
