"""photos: faces found in photographs, cropped like the training faces, answers mapped back to the photograph."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.serving import photos
from pipeline.data import sample
from pipeline.core.competitions import EXPRESSIONS, KEYPOINT_NAMES, KEYPOINTS
from pipeline.core.errors import BadInputError
from pipeline.data.scale import KeypointScaling
from pipeline.cli import cli

cv2 = pytest.importorskip("cv2")

FACE_AT, FACE_SIDE = (120, 40), 220   # where face_photo draws the face, and how large


def face_photo(seed=0):
    """A 400x300 colour photograph: a built-in sample face (its own grey square, skin-tinted) drawn
    FACE_SIDE pixels large at FACE_AT on a coloured texture. Returns it and the face's 15 keypoints
    (15, 2) in the photograph's pixels."""
    rng = np.random.default_rng(seed)
    pose = {"centre": np.float32([[48, 48]]), "scale": np.float32([1.0]), "angle": np.float32([0.0])}
    keypoints = 48 + np.float32([sample.NEUTRAL[name] for name in KEYPOINT_NAMES]).reshape(1, 30)   # that pose
    face = sample.render(keypoints, sample.CLASS_MEANS[[0]], pose, rng)[0]
    photo = cv2.GaussianBlur(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8), (0, 0), 2)
    x, y = FACE_AT
    enlarged = cv2.resize(face, (FACE_SIDE, FACE_SIDE), interpolation=cv2.INTER_CUBIC)
    photo[y:y + FACE_SIDE, x:x + FACE_SIDE] = np.clip(enlarged[..., None] * [0.75, 0.85, 1.0], 0, 255)
    # The drawn face is a 96x96 crop of the photograph, read backwards.
    return photo, photos.crop_to_image(keypoints, (x, y, FACE_SIDE), 96).reshape(15, 2)


def gray(image):
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


# --- geometry ---------------------------------------------------------------------------------------

def test_the_crop_square_keeps_the_box_centre_and_is_a_fifth_larger():
    assert photos.square_box((100, 50, 80, 80)) == (92, 42, 96)      # centre (140, 90) kept
    x, y, side = photos.square_box((10, 20, 60, 100))                 # a tall box: its height decides
    assert side == 120 and (x + side / 2, y + side / 2) == (40, 70)


def test_a_crop_beyond_the_image_repeats_its_edge_pixels():
    image = np.arange(20, dtype=np.uint8).reshape(4, 5) * 10          # (4, 5), every pixel distinct
    crop = photos.crop_square(image, (-2, -1, 6), size=6)             # 6x6, no resizing
    np.testing.assert_array_equal(crop[1:5, 2:6], image[:, :4])       # the part inside, unchanged
    np.testing.assert_array_equal(crop[0], crop[1])                   # the row above: the top row again
    np.testing.assert_array_equal(crop[:, 0], crop[:, 2])             # columns left: the left column again
    np.testing.assert_array_equal(crop[5], crop[4])                   # one row below the bottom one


def test_a_point_lands_on_its_crop_pixel_and_maps_back_exactly():
    square = (100, 60, 192)                 # shrunk 2x into 96 pixels: each crop pixel averages 2x2
    image = np.zeros((400, 500), np.uint8)
    image[60 + 2 * 30:60 + 2 * 30 + 2, 100 + 2 * 70:100 + 2 * 70 + 2] = 255   # a 2x2 block at (240.5, 120.5)
    crop = photos.crop_square(image, square, 96)
    assert np.argwhere(crop).tolist() == [[30, 70]]                   # one crop pixel: row 30, column 70
    np.testing.assert_array_equal(photos.crop_to_image([[70, 30]], square, 96), [[240.5, 120.5]])


def test_crop_to_image_maps_every_keypoint_pair():
    points = np.array([[0, 0, 95, 95, 47.5, 10]])
    mapped = photos.crop_to_image(points, (-10, 5, 96), 96)          # same size: only a shift
    np.testing.assert_array_equal(mapped, [[-10, 5, 85, 100, 37.5, 15]])


def test_output_names_stay_apart_when_two_images_share_a_name():
    assert photos.output_stems(["a/x.jpg", "b/x.png", "y.jpg"]) == ["x", "x-2", "y"]


# --- detection and reading ----------------------------------------------------------------------

def test_the_haar_cascade_finds_a_drawn_face_where_it_was_drawn():
    photo, _ = face_photo()
    boxes = photos.detect_faces(gray(photo))
    assert len(boxes) == 1
    x, y, width, height = boxes[0]
    centre = np.array([FACE_AT[0] + FACE_SIDE / 2, FACE_AT[1] + FACE_SIDE / 2])
    assert np.abs(np.array([x + width / 2, y + height / 2]) - centre).max() < 0.1 * FACE_SIDE
    assert 0.7 * FACE_SIDE < width < 1.2 * FACE_SIDE


def test_the_crop_frames_the_face_as_the_training_faces_are_framed():
    photo, true_points = face_photo()
    square = photos.square_box(photos.detect_faces(gray(photo))[0])
    # Where the average training face has its features (96x96), carried into the photograph.
    average = np.float32([[48 + dx, 48 + dy] for dx, dy in (sample.NEUTRAL[n] for n in KEYPOINT_NAMES)])
    expected = photos.crop_to_image(average.reshape(1, 30), square, 96).reshape(15, 2)
    pixel = square[2] / 96   # one crop pixel, in the photograph's pixels
    assert np.abs(expected - true_points).max() < 10 * pixel


def test_a_large_photograph_is_detected_at_a_smaller_scale_and_boxes_come_back_in_its_pixels():
    photo, _ = face_photo()
    large = cv2.resize(photo, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)   # 1600x1200 > DETECT_SIDE
    small_box, large_box = photos.detect_faces(gray(photo))[0], photos.detect_faces(gray(large))[0]
    np.testing.assert_allclose(large_box, 4 * small_box, atol=0.1 * 4 * FACE_SIDE)


def test_a_blank_image_has_no_face():
    assert photos.detect_faces(np.full((300, 400), 128, np.uint8)).shape == (0, 4)


def test_a_corrupt_or_missing_file_is_one_line_naming_it(tmp_path):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"not an image")
    with pytest.raises(BadInputError, match=r"corrupt\.jpg: not an image file OpenCV can decode"):
        photos.read_photo(corrupt)
    with pytest.raises(BadInputError, match=r"missing\.jpg: cannot read it"):
        photos.read_photo(tmp_path / "missing.jpg")


def test_a_grey_image_reads_as_three_equal_channels(tmp_path):
    path = tmp_path / "grey.png"
    cv2.imwrite(str(path), gray(face_photo()[0]))
    image = photos.read_photo(path)
    assert image.shape == (300, 400, 3)
    np.testing.assert_array_equal(image[..., 0], image[..., 2])


# --- run, with stand-in models that answer constants --------------------------------------------

class Constant:
    """A 'model' answering the same output for every image, in full batches as predict_batches sends."""

    def __init__(self, output):
        self.output = np.float32(output)

    def predict(self, images, batch_size, verbose=0):
        assert len(images) % batch_size == 0
        return np.tile(self.output, (len(images), 1))


def stand_ins():
    classes = ("Angry", "Happy", "Neutral")
    return {
        # 0 in [-1, 1] is the crop's centre, 48 px, under the image-bounds scaling.
        "keypoints": photos.Predictor("keypoints", "kp-run", 96, [Constant(np.zeros(30))], "none",
                                      scaling=KeypointScaling((0.0,) * 30, (96.0,) * 30)),
        "expressions": photos.Predictor("expressions", "ex-run", 48, [Constant([0.2, 0.7, 0.1])], "none",
                                        classes=classes),
    }


def test_run_writes_the_faces_answers_in_the_photographs_pixels(tmp_path):
    path = tmp_path / "face.png"
    cv2.imwrite(str(path), face_photo()[0])
    lines = []
    counts = photos.run([path], tmp_path / "out", stand_ins(), echo=lines.append)
    assert counts == {"images": 1, "faces": 1, "failed": 0}
    assert "face.png: 1 face (Happy 70%)" in lines[-1]

    written = json.loads((tmp_path / "out" / "face.json").read_text())
    assert (written["width"], written["height"]) == (400, 300)
    assert written["runs"] == {"keypoints": "kp-run", "expressions": "ex-run"}
    [face] = written["faces"]
    x, y, side = face["crop"]
    assert sorted(face["keypoints"]) == sorted(KEYPOINT_NAMES)   # write_json sorts keys
    for point in face["keypoints"].values():   # every point at the crop's centre
        np.testing.assert_allclose(point, [x + side / 2, y + side / 2], atol=1)
    assert face["probabilities"] == pytest.approx({"Angry": 0.2, "Happy": 0.7, "Neutral": 0.1})
    assert face["expression"] == "Happy"
    assert cv2.imread(str(tmp_path / "out" / "face.jpg")).shape == (300, 400, 3)


def test_an_unreadable_file_is_skipped_and_the_others_processed(tmp_path):
    bad, blank = tmp_path / "bad.jpg", tmp_path / "blank.png"
    bad.write_bytes(b"not an image")
    cv2.imwrite(str(blank), np.full((300, 400, 3), 200, np.uint8))
    lines, warnings = [], []
    counts = photos.run([bad, blank], tmp_path / "out", stand_ins(), echo=lines.append, warn=warnings.append)
    assert counts == {"images": 1, "faces": 0, "failed": 1}
    assert warnings == [f"{bad}: not an image file OpenCV can decode; skipped"]
    assert "blank.png: no face found" in lines[-1]
    assert json.loads((tmp_path / "out" / "blank.json").read_text())["faces"] == []
    assert not (tmp_path / "out" / "bad.json").exists()


def test_run_fails_only_when_no_image_could_be_processed(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"")
    with pytest.raises(BadInputError, match="none of the 2 images could be read"):
        photos.run([tmp_path / "bad.jpg", tmp_path / "missing.png"], tmp_path / "out", {}, echo=lambda _: None)


# --- the command, with runs trained for one epoch (tests/conftest.py) ---------------------------

def invoke(root, *args):
    return CliRunner().invoke(cli, ["--root", str(root), "predict-image", *args])


def test_a_task_without_a_trained_run_says_which_command_to_run(tmp_path):
    image = tmp_path / "face.png"
    cv2.imwrite(str(image), face_photo()[0])
    result = invoke(tmp_path, str(image), "--task", "expressions")
    assert result.exit_code == 1
    assert "run `python run.py train --task expressions` first" in result.output


@pytest.mark.slow
def test_predict_image_writes_each_faces_box_keypoints_and_probabilities(trained_project, tmp_path):
    photo, _ = face_photo()
    cv2.imwrite(str(tmp_path / "face.jpg"), photo)
    cv2.imwrite(str(tmp_path / "grey.png"), gray(photo))
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((240, 320), 90, np.uint8))
    (tmp_path / "corrupt.jpg").write_bytes(b"not an image")
    names = ["face.jpg", "corrupt.jpg", "grey.png", "blank.png"]
    result = invoke(trained_project, *[str(tmp_path / n) for n in names], "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert f"{tmp_path / 'corrupt.jpg'}: not an image file OpenCV can decode; skipped" in result.output
    assert f"{tmp_path / 'blank.png'}: no face found" in result.output

    runs = trained_project / "data" / "runs"
    classes = json.loads((runs / EXPRESSIONS.slug / (runs / EXPRESSIONS.slug / "latest").read_text().strip()
                          / "predictor.json").read_text())["classes"]
    for stem in ("face", "grey"):
        written = json.loads((tmp_path / "out" / f"{stem}.json").read_text())
        assert written["runs"]["keypoints"] == (runs / KEYPOINTS.slug / "latest").read_text().strip()
        [face] = written["faces"]
        x, y, side = face["crop"]
        for px, py in face["keypoints"].values():   # a one-epoch model's points, but inside its crop
            assert x <= px <= x + side and y <= py <= y + side
        assert sorted(face["probabilities"]) == sorted(classes)
        assert sum(face["probabilities"].values()) == pytest.approx(1, abs=1e-4)
        assert cv2.imread(str(tmp_path / "out" / f"{stem}.jpg")).shape == photo.shape
    assert json.loads((tmp_path / "out" / "blank.json").read_text())["faces"] == []


@pytest.mark.slow
def test_predict_image_runs_only_the_task_asked_for(trained_project, tmp_path):
    cv2.imwrite(str(tmp_path / "face.png"), face_photo()[0])
    result = invoke(trained_project, str(tmp_path / "face.png"), "--task", "keypoints", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output + repr(result.exception)
    [face] = json.loads((tmp_path / "face.json").read_text())["faces"]
    assert "keypoints" in face and "probabilities" not in face


@pytest.mark.slow
def test_predict_image_fails_when_every_image_is_unreadable(trained_project, tmp_path):
    (tmp_path / "corrupt.jpg").write_bytes(b"not an image")
    result = invoke(trained_project, str(tmp_path / "corrupt.jpg"), "--task", "expressions", "--out", str(tmp_path))
    assert result.exit_code == BadInputError.exit_code
    assert "none of the 1 images could be read" in result.output
