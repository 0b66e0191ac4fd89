"""video: `run.py predict-video`, the faces of a video file found, tracked, predicted and drawn, frame by frame.

Frames are streamed: read, buffered FRAMES_PER_BATCH at a time so that the faces of several frames
go through the models as one batch (faces.answer_faces), written out and dropped, so memory stays
flat however long the video is. Each face keeps one id across frames (Tracker: the best box overlap
with a face of the frames just before). With `every` N > 1 only every Nth frame is predicted; the
frames between keep the last predicted faces (drawn, and in the CSV with predicted=0), which suits
video where faces move little in N frames.

For each video, `run` writes <stem>.mp4 (the frames annotated, same count and rate; MPEG-4 part 2,
the encoder opencv-python-headless's FFmpeg always has) and <stem>.csv: one row per frame and face.
"""
import contextlib
import csv
import time
from pathlib import Path

import cv2
import numpy as np

from pipeline.core.competitions import KEYPOINT_NAMES
from pipeline.core.errors import BadInputError, PipelineError
from pipeline.core.fileio import atomic_open, atomic_path
from pipeline.serving.faces import annotate, answer_faces, find_faces
from pipeline.serving.photos import output_stems

FRAMES_PER_BATCH = 8   # frames whose faces are predicted together; the frames held in memory at once
MATCH_IOU = 0.3        # the least box overlap (intersection over union) that continues a face's track
MAX_MISSED = 10        # predicted frames in a row a face may go undetected and keep its id
FOURCC = "mp4v"
FALLBACK_FPS = 25.0    # for a file that does not say its rate


def iou(a, b):
    """Intersection over union of two (x, y, width, height) boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    width = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    height = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = width * height
    return inter / (aw * ah + bw * bh - inter) if inter else 0.0


class Tracker:
    """Face ids across predicted frames: each face takes the id of the track whose last box overlaps
    it most (greedy, best pairs first, at least MATCH_IOU); a face that matches none starts a new id;
    a track unseen in MAX_MISSED predicted frames in a row ends."""

    def __init__(self):
        self.tracks = {}   # id -> (last box, the step it was last seen)
        self.next_id = 1
        self.step = 0

    def assign(self, faces):
        """Set face["id"] for every face (dicts with a "box") of the next predicted frame; returns `faces`."""
        self.step += 1
        self.tracks = {i: t for i, t in self.tracks.items() if self.step - t[1] <= MAX_MISSED + 1}
        pairs = sorted(((iou(track[0], face["box"]), track_id, index)
                        for track_id, track in self.tracks.items() for index, face in enumerate(faces)),
                       reverse=True)
        taken_tracks, taken_faces = set(), set()
        for overlap, track_id, index in pairs:
            if overlap < MATCH_IOU:
                break
            if track_id in taken_tracks or index in taken_faces:
                continue
            faces[index]["id"] = track_id
            taken_tracks.add(track_id)
            taken_faces.add(index)
        for index, face in enumerate(faces):
            if index not in taken_faces:
                face["id"] = self.next_id
                self.next_id += 1
            self.tracks[face["id"]] = (face["box"], self.step)
        return faces


def open_video(path):
    """(cv2.VideoCapture, fps, frame count (0 when the file does not say), width, height)."""
    if not Path(path).is_file():
        raise BadInputError(f"{path}: no such file")
    capture = cv2.VideoCapture(str(path))
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if not capture.isOpened() or not width or not height:
        capture.release()
        raise BadInputError(f"{path}: not a video file OpenCV can read")
    fps = capture.get(cv2.CAP_PROP_FPS)
    fps = fps if np.isfinite(fps) and fps > 0 else FALLBACK_FPS
    return capture, fps, max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0), width, height


def csv_header(predictors):
    header = ["frame", "time", "predicted", "face", "x", "y", "width", "height"]
    if "keypoints" in predictors:
        header += [f"{name}_{axis}" for name in KEYPOINT_NAMES for axis in "xy"]
    if "expressions" in predictors:
        header += ["expression", *predictors["expressions"].classes]
    return header


def csv_row(frame, seconds, predicted, face, predictors):
    row = [frame, f"{seconds:.3f}", int(predicted), face["id"], *face["box"]]
    if "keypoints" in predictors:
        row += [value for point in face["keypoints"].values() for value in point]
    if "expressions" in predictors:
        row += [face["expression"], *(f"{face['probabilities'][c]:.6f}" for c in predictors["expressions"].classes)]
    return row


def draw(frame, faces):
    """annotate's drawing, and each face's id under its box."""
    drawn = annotate(frame, faces)
    for face in faces:
        x, y, width, height = face["box"]
        cv2.putText(drawn, f"#{face['id']}", (x, min(y + height + 18, drawn.shape[0] - 2)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.6, (0, 255, 0), 2, cv2.LINE_AA)
    return drawn


def predict_video(path, out, stem, predictors, every=1, progress=None):
    """Write out/<stem>.mp4 and out/<stem>.csv for one video; a dict of counts and timings."""
    capture, fps, count, width, height = open_video(path)
    tracker, carried = Tracker(), []
    counts = {"frames": 0, "predicted_frames": 0, "faces": 0, "ids": set()}
    started = time.perf_counter()
    bar = progress(str(path), max(count, 1)) if progress else contextlib.nullcontext()
    try:
        with bar, atomic_path(out / f"{stem}.mp4", suffix=".mp4") as video_path, \
                atomic_open(out / f"{stem}.csv", "w", newline="", encoding="utf-8") as table:
            writer = cv2.VideoWriter(str(video_path), cv2.VideoWriter_fourcc(*FOURCC), fps, (width, height))
            if not writer.isOpened():
                raise PipelineError(f"{out / stem}.mp4: OpenCV cannot write {FOURCC} video here")
            rows = csv.writer(table)
            rows.writerow(csv_header(predictors))

            def flush(buffer):
                nonlocal carried
                chosen = [(index, frame) for index, frame in buffer if index % every == 0]
                grays = [cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) for _, frame in chosen]
                answered = dict(zip([index for index, _ in chosen],
                                    answer_faces(grays, [find_faces(gray) for gray in grays], predictors)))
                for index, frame in buffer:
                    predicted = index in answered
                    if predicted:
                        carried = tracker.assign(answered[index])
                        counts["predicted_frames"] += 1
                        counts["faces"] += len(carried)
                    writer.write(draw(frame, carried))
                    for face in carried:
                        rows.writerow(csv_row(index, index / fps, predicted, face, predictors))
                        counts["ids"].add(face["id"])
                counts["frames"] += len(buffer)
                if progress:
                    rate = counts["frames"] / max(time.perf_counter() - started, 1e-9)
                    bar.update(len(buffer), f"{rate:.1f} frames/s")

            buffer = []
            try:
                while True:
                    ok, frame = capture.read()
                    if not ok:
                        break
                    buffer.append((counts["frames"] + len(buffer), frame))
                    if len(buffer) == FRAMES_PER_BATCH:
                        flush(buffer)
                        buffer = []
                flush(buffer)
            finally:
                writer.release()
            if not counts["frames"]:
                raise BadInputError(f"{path}: no frame could be read")
    finally:
        capture.release()
    seconds = time.perf_counter() - started
    return {**counts, "ids": len(counts["ids"]), "fps": fps, "seconds": seconds,
            "faces_per_s": counts["faces"] / seconds}


def run(paths, out, predictors, every=1, echo=print, warn=None, progress=None):
    """Predict each video of `paths` into the folder `out`, one line each. A file that cannot be read
    is reported (`warn`) and skipped; BadInputError only if none could be processed. `progress`
    (label, length) gives a context manager whose update(frames, text) follows each video."""
    warn = warn or echo
    for task, predictor in predictors.items():
        echo(f"{task}: run {predictor.run} (tta {predictor.tta})")
    totals = {"videos": 0, "frames": 0, "faces": 0, "failed": 0}
    for path, stem in zip(paths, output_stems(paths)):
        try:
            counts = predict_video(Path(path), Path(out), stem, predictors, every, progress)
        except BadInputError as error:
            warn(f"{error}; skipped")
            totals["failed"] += 1
            continue
        totals["videos"] += 1
        totals["frames"] += counts["frames"]
        totals["faces"] += counts["faces"]
        echo(f"{path}: {counts['frames']} frames ({counts['predicted_frames']} predicted), {counts['faces']} faces "
             f"({counts['ids']} ids) in {counts['seconds']:.1f}s, {counts['frames'] / counts['seconds']:.1f} frames/s, "
             f"{counts['faces_per_s']:.1f} faces/s -> {Path(out) / stem}.mp4, .csv")
    if not totals["videos"]:
        raise BadInputError(f"none of the {len(paths)} videos could be read")
    return totals
