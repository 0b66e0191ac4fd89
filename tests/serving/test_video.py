"""video: a generated clip of two drawn faces moving: every frame written, two stable ids, a CSV row per frame and face."""
import csv

import numpy as np
import pytest
from click.testing import CliRunner

cv2 = pytest.importorskip("cv2")

from pipeline.cli import cli  # noqa: E402
from pipeline.core.competitions import KEYPOINT_NAMES  # noqa: E402
from pipeline.core.errors import BadInputError  # noqa: E402
from pipeline.serving import video  # noqa: E402
from test_faces import FACE_AT, FACE_SIDE, face_photo, stand_ins  # noqa: E402

FRAMES, FPS, SIDE = 20, 10.0, 150


def two_faces_clip(path, frames=FRAMES, fps=FPS):
    """A 640x360 MJPG clip: two built-in sample faces, SIDE px large, the left one moving right and
    the right one moving down, 3 px a frame. Returns the faces' top-left corners per frame."""
    photo, _ = face_photo()
    face = cv2.resize(photo[FACE_AT[1]:FACE_AT[1] + FACE_SIDE, FACE_AT[0]:FACE_AT[0] + FACE_SIDE], (SIDE, SIDE))
    # Smooth enough that the cascade finds nothing in it (sigma 2 gave a false face in 1 frame of 20).
    background = cv2.GaussianBlur(np.random.default_rng(1).integers(0, 256, (360, 640, 3), dtype=np.uint8), (0, 0), 6)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 360))
    corners = []
    for i in range(frames):
        frame = background.copy()
        places = [(20 + 3 * i, 100), (420, 10 + 3 * i)]
        for x, y in places:
            frame[y:y + SIDE, x:x + SIDE] = face
        writer.write(frame)
        corners.append(places)
    writer.release()
    return corners


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def count_frames(path):
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return count, fps


# --- the tracker ------------------------------------------------------------------------------------

def test_iou_of_boxes():
    assert video.iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1
    assert video.iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert video.iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0


def test_the_tracker_keeps_ids_as_faces_move_and_cross_the_frame_order():
    tracker = video.Tracker()
    first = tracker.assign([{"box": [0, 0, 50, 50]}, {"box": [200, 0, 50, 50]}])
    assert [f["id"] for f in first] == [1, 2]
    # Listed the other way round and moved a little: each keeps its id.
    second = tracker.assign([{"box": [205, 3, 50, 50]}, {"box": [6, 2, 50, 50]}])
    assert [f["id"] for f in second] == [2, 1]
    # One gone for a frame, then back: the same id; a face elsewhere: a new one.
    tracker.assign([{"box": [8, 2, 50, 50]}])
    third = tracker.assign([{"box": [10, 2, 50, 50]}, {"box": [207, 4, 50, 50]}, {"box": [400, 300, 40, 40]}])
    assert [f["id"] for f in third] == [1, 2, 3]


def test_a_face_keeps_its_id_through_max_missed_frames_without_it_and_no_longer():
    tracker = video.Tracker()
    tracker.assign([{"box": [0, 0, 50, 50]}])
    for _ in range(video.MAX_MISSED):
        tracker.assign([])
    assert tracker.assign([{"box": [0, 0, 50, 50]}])[0]["id"] == 1
    for _ in range(video.MAX_MISSED + 1):
        tracker.assign([])
    assert tracker.assign([{"box": [0, 0, 50, 50]}])[0]["id"] == 2


def frames_of(path):
    capture = cv2.VideoCapture(str(path))
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        yield cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    capture.release()


def test_between_full_detections_each_face_is_followed_near_its_last_box(tmp_path, monkeypatch):
    corners = two_faces_clip(tmp_path / "clip.avi", frames=12)
    full = []
    real = video.detect_faces
    monkeypatch.setattr(video, "detect_faces", lambda gray, side: full.append(1) or real(gray, side))
    finder = video.FaceFinder(full_every=5)
    for frame, (gray, places) in enumerate(zip(frames_of(tmp_path / "clip.avi"), corners)):
        found = finder(gray)
        assert len(found) == 2, frame
        for face, (x, y) in zip(sorted(found, key=lambda f: f["box"][0]), places):
            bx, by, width, height = face["box"]
            assert abs(bx + width / 2 - (x + SIDE / 2)) < 0.15 * SIDE and abs(by + height / 2 - (y + SIDE / 2)) < 0.15 * SIDE
            assert 0.7 * SIDE < width < 1.3 * SIDE
    assert len(full) == 3   # frames 0, 5 and 10


def test_a_face_that_appears_is_found_at_the_next_full_detection_and_nothing_followed_means_full_every_frame(tmp_path):
    two_faces_clip(tmp_path / "clip.avi", frames=3)
    gray = next(frames_of(tmp_path / "clip.avi"))
    left_only = gray.copy()
    left_only[:, 320:] = cv2.GaussianBlur(left_only[:, 320:], (0, 0), 25)   # the right face blurred away
    finder = video.FaceFinder(full_every=3)
    assert len(finder(left_only)) == 1
    assert len(finder(gray)) == 1        # followed, not searched for: the new face waits
    assert len(finder(gray)) == 1
    assert len(finder(gray)) == 2        # frame 3: the whole frame again
    blank = np.full_like(gray, 120)
    finder = video.FaceFinder(full_every=3)
    assert finder(blank) == [] and finder(gray) != []   # nothing followed: the whole frame, every frame


# --- a video, with stand-in models ------------------------------------------------------------------

def test_a_clip_of_two_moving_faces_gives_every_frame_two_stable_ids_and_a_row_per_frame_and_face(tmp_path):
    corners = two_faces_clip(tmp_path / "clip.avi")
    lines, bars = [], []

    class Bar:
        def __init__(self, label, length):
            self.done = 0
            bars.append((label, length, self))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def update(self, frames, text):
            self.done += frames
            assert text.endswith("frames/s")

    totals = video.run([tmp_path / "clip.avi"], tmp_path / "out", stand_ins(), echo=lines.append, progress=Bar)
    assert totals == {"videos": 1, "frames": FRAMES, "faces": 2 * FRAMES, "failed": 0}
    assert "20 frames (20 predicted), 40 faces (2 ids)" in lines[-1]
    assert bars[0][1] == FRAMES and bars[0][2].done == FRAMES

    assert count_frames(tmp_path / "out" / "clip.mp4") == (FRAMES, FPS)
    rows = read_csv(tmp_path / "out" / "clip.csv")
    assert len(rows) == 2 * FRAMES
    assert [int(r["frame"]) for r in rows] == [i for i in range(FRAMES) for _ in range(2)]
    assert float(rows[-1]["time"]) == pytest.approx((FRAMES - 1) / FPS)
    for row in rows:   # id 1 is the left face, moving right; id 2 the right one, moving down
        frame, face = int(row["frame"]), int(row["face"])
        x, y = corners[frame][face - 1]
        centre = np.array([x + SIDE / 2, y + SIDE / 2])
        box = np.array([float(row[k]) for k in ("x", "y", "width", "height")])
        assert np.abs(box[:2] + box[2:] / 2 - centre).max() < 0.15 * SIDE
        # The stand-in answers the crop's centre, in the video's pixels.
        assert abs(float(row["nose_tip_x"]) - centre[0]) < 0.15 * SIDE
        assert row["expression"] == "Happy" and float(row["Happy"]) == pytest.approx(0.7)
    header = list(rows[0])
    assert header[:8] == ["frame", "time", "predicted", "face", "x", "y", "width", "height"]
    assert header[8:38] == [f"{name}_{axis}" for name in KEYPOINT_NAMES for axis in "xy"]
    assert header[38:] == ["expression", "Angry", "Happy", "Neutral"]
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]   # no temp files left


def test_every_nth_frame_is_predicted_and_the_frames_between_carry_its_faces(tmp_path, monkeypatch):
    two_faces_clip(tmp_path / "clip.avi", frames=10)
    answered = []
    real = video.answer_faces
    monkeypatch.setattr(video, "answer_faces", lambda grays, *a: answered.append(len(grays)) or real(grays, *a))
    video.run([tmp_path / "clip.avi"], tmp_path / "out", stand_ins(), every=3, echo=lambda _: None)
    assert sum(answered) == 4   # frames 0, 3, 6, 9
    rows = read_csv(tmp_path / "out" / "clip.csv")
    assert len(rows) == 20
    assert [r["predicted"] for r in rows[::2]] == ["1", "0", "0", "1", "0", "0", "1", "0", "0", "1"]
    assert rows[2]["x"] == rows[0]["x"] and rows[6]["x"] != rows[0]["x"]
    assert count_frames(tmp_path / "out" / "clip.mp4")[0] == 10


def test_an_unreadable_video_is_skipped_and_the_others_processed(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    two_faces_clip(tmp_path / "clip.avi", frames=3)
    warnings = []
    totals = video.run([tmp_path / "bad.mp4", tmp_path / "missing.avi", tmp_path / "clip.avi"], tmp_path / "out",
                       stand_ins(), echo=lambda _: None, warn=warnings.append)
    assert totals["videos"] == 1 and totals["failed"] == 2
    assert warnings[0] == f"{tmp_path / 'bad.mp4'}: not a video file OpenCV can read; skipped"
    assert not (tmp_path / "out" / "bad.csv").exists() and not (tmp_path / "out" / "bad.mp4").exists()
    with pytest.raises(BadInputError, match="none of the 1 videos could be read"):
        video.run([tmp_path / "bad.mp4"], tmp_path / "out", stand_ins(), echo=lambda _: None, warn=lambda _: None)


@pytest.mark.slow
def test_predict_video_writes_the_annotated_copy_and_the_csv(trained_project, tmp_path):
    two_faces_clip(tmp_path / "clip.avi", frames=12)
    result = CliRunner().invoke(cli, ["--root", str(trained_project), "predict-video", str(tmp_path / "clip.avi"),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "12 frames (12 predicted), 24 faces (2 ids)" in result.output
    assert count_frames(tmp_path / "out" / "clip.mp4") == (12, FPS)
    rows = read_csv(tmp_path / "out" / "clip.csv")
    assert len(rows) == 24 and {r["face"] for r in rows} == {"1", "2"}
    for row in rows:
        x, y, side = (float(row[k]) for k in ("x", "y", "width"))
        assert x - 0.2 * side <= float(row["nose_tip_x"]) <= x + 1.2 * side
        probabilities = [float(v) for k, v in row.items() if k not in video.csv_header({"keypoints": 0})
                         and k != "expression"]
        assert sum(probabilities) == pytest.approx(1, abs=1e-4)
