"""photos: predict-image's files for each photograph, with stand-in runs and with runs trained for one epoch."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.serving import photos
from pipeline.core.competitions import EXPRESSIONS, KEYPOINT_NAMES, KEYPOINTS
from pipeline.core.errors import BadInputError
from pipeline.cli import cli
from test_faces import face_photo, gray, stand_ins  # noqa: F401  (the photos and stand-in runs of faces' tests)

cv2 = pytest.importorskip("cv2")


def test_output_names_stay_apart_when_two_images_share_a_name():
    assert photos.output_stems(["a/x.jpg", "b/x.png", "y.jpg"]) == ["x", "x-2", "y"]


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
