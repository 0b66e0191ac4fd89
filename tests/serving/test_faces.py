"""faces: faces found in images, cropped like the training faces, answers mapped back to the image.

Also the helpers the other serving tests compose their photos and stand-in runs with."""
import numpy as np
import pytest

from pipeline.core.competitions import KEYPOINT_NAMES
from pipeline.data import sample
from pipeline.data.scale import KeypointScaling
from pipeline.serving import faces

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
    return photo, faces.crop_to_image(keypoints, (x, y, FACE_SIDE), 96).reshape(15, 2)


def gray(image):
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


# --- geometry ---------------------------------------------------------------------------------------

def test_the_crop_square_keeps_the_box_centre_and_is_a_fifth_larger():
    assert faces.square_box((100, 50, 80, 80)) == (92, 42, 96)      # centre (140, 90) kept
    x, y, side = faces.square_box((10, 20, 60, 100))                 # a tall box: its height decides
    assert side == 120 and (x + side / 2, y + side / 2) == (40, 70)


def test_a_crop_beyond_the_image_repeats_its_edge_pixels():
    image = np.arange(20, dtype=np.uint8).reshape(4, 5) * 10          # (4, 5), every pixel distinct
    crop = faces.crop_square(image, (-2, -1, 6), size=6)             # 6x6, no resizing
    np.testing.assert_array_equal(crop[1:5, 2:6], image[:, :4])       # the part inside, unchanged
    np.testing.assert_array_equal(crop[0], crop[1])                   # the row above: the top row again
    np.testing.assert_array_equal(crop[:, 0], crop[:, 2])             # columns left: the left column again
    np.testing.assert_array_equal(crop[5], crop[4])                   # one row below the bottom one


def test_a_point_lands_on_its_crop_pixel_and_maps_back_exactly():
    square = (100, 60, 192)                 # shrunk 2x into 96 pixels: each crop pixel averages 2x2
    image = np.zeros((400, 500), np.uint8)
    image[60 + 2 * 30:60 + 2 * 30 + 2, 100 + 2 * 70:100 + 2 * 70 + 2] = 255   # a 2x2 block at (240.5, 120.5)
    crop = faces.crop_square(image, square, 96)
    assert np.argwhere(crop).tolist() == [[30, 70]]                   # one crop pixel: row 30, column 70
    np.testing.assert_array_equal(faces.crop_to_image([[70, 30]], square, 96), [[240.5, 120.5]])


def test_crop_to_image_maps_every_keypoint_pair():
    points = np.array([[0, 0, 95, 95, 47.5, 10]])
    mapped = faces.crop_to_image(points, (-10, 5, 96), 96)          # same size: only a shift
    np.testing.assert_array_equal(mapped, [[-10, 5, 85, 100, 37.5, 15]])


# --- detection and reading ----------------------------------------------------------------------

def test_the_haar_cascade_finds_a_drawn_face_where_it_was_drawn():
    photo, _ = face_photo()
    boxes = faces.detect_faces(gray(photo))
    assert len(boxes) == 1
    x, y, width, height = boxes[0]
    centre = np.array([FACE_AT[0] + FACE_SIDE / 2, FACE_AT[1] + FACE_SIDE / 2])
    assert np.abs(np.array([x + width / 2, y + height / 2]) - centre).max() < 0.1 * FACE_SIDE
    assert 0.7 * FACE_SIDE < width < 1.2 * FACE_SIDE


def test_the_crop_frames_the_face_as_the_training_faces_are_framed():
    photo, true_points = face_photo()
    square = faces.square_box(faces.detect_faces(gray(photo))[0])
    # Where the average training face has its features (96x96), carried into the photograph.
    average = np.float32([[48 + dx, 48 + dy] for dx, dy in (sample.NEUTRAL[n] for n in KEYPOINT_NAMES)])
    expected = faces.crop_to_image(average.reshape(1, 30), square, 96).reshape(15, 2)
    pixel = square[2] / 96   # one crop pixel, in the photograph's pixels
    assert np.abs(expected - true_points).max() < 10 * pixel


def test_a_large_photograph_is_detected_at_a_smaller_scale_and_boxes_come_back_in_its_pixels():
    photo, _ = face_photo()
    large = cv2.resize(photo, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)   # 1600x1200 > DETECT_SIDE
    small_box, large_box = faces.detect_faces(gray(photo))[0], faces.detect_faces(gray(large))[0]
    np.testing.assert_allclose(large_box, 4 * small_box, atol=0.1 * 4 * FACE_SIDE)


def test_a_blank_image_has_no_face():
    assert faces.detect_faces(np.full((300, 400), 128, np.uint8)).shape == (0, 4)


# --- stand-in models that answer constants (used by the photos, video, server and page tests) ---

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
        "keypoints": faces.Predictor("keypoints", "kp-run", 96, [Constant(np.zeros(30))], "none",
                                     scaling=KeypointScaling((0.0,) * 30, (96.0,) * 30)),
        "expressions": faces.Predictor("expressions", "ex-run", 48, [Constant([0.2, 0.7, 0.1])], "none",
                                       classes=classes),
    }


def spread_out_stand_ins():
    """Stand-in runs: the average face's keypoints in every crop, and Happy 70%."""
    offsets = np.float32([sample.NEUTRAL[name] for name in KEYPOINT_NAMES]).reshape(30) / 48
    return {"keypoints": faces.Predictor("keypoints", "kp-run", 96, [Constant(offsets)], "none",
                                         scaling=KeypointScaling((0.0,) * 30, (96.0,) * 30)),
            "expressions": faces.Predictor("expressions", "ex-run", 48, [Constant([0.2, 0.7, 0.1])], "none",
                                           classes=("Angry", "Happy", "Neutral"))}


class StandInRun:
    """What live_tta and server.run_summary read of a RunDir: its TTA and a score under each."""
    task, name, params = "keypoints", "kp-run", {"model": "heatmap_keypoints"}

    def __init__(self, tta):
        self.tta = tta

    def score(self, tta=None):
        return {"none": 1.3, "flip": 1.2, "multi": 1.1}[tta or self.tta]


@pytest.mark.parametrize("own, live", [("none", "none"), ("flip", "flip"), ("multi", "flip")])
def test_faces_get_the_runs_tta_up_to_the_image_and_its_mirror(own, live):
    assert faces.live_tta(StandInRun(own)) == live


def test_health_gives_the_score_under_the_tta_the_server_uses():
    from pipeline.serving import server
    summary = server.run_summary(StandInRun("multi"))
    assert (summary["tta"], summary["validation_score"]) == ("flip", 1.2)
