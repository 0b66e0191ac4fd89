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
import queue
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from pipeline.core.competitions import KEYPOINT_NAMES
from pipeline.core.errors import BadInputError, PipelineError
from pipeline.core.fileio import atomic_open, atomic_path
from pipeline.serving.faces import MIN_FACE, annotate, answer_faces, cascade, detect_faces, square_box
from pipeline.serving.photos import output_stems

FRAMES_PER_BATCH = 16  # frames whose faces are predicted together; the frames held in memory at once
MATCH_IOU = 0.3        # the least box overlap (intersection over union) that continues a face's track
MAX_MISSED = 10        # predicted frames in a row a face may go undetected and keep its id
FOURCC = "mp4v"
FALLBACK_FPS = 25.0    # for a file that does not say its rate
# Frames are detected at this longest side (the crops are still cut from the full frame): on a
# 640x480 clip, 31 ms a frame instead of 56 (2 shared cores), the same boxes within 3 px; faces under
# 40 px at 640 wide are missed (fer's default misses those under 50).
DETECT_SIDE = 480
# Between full-frame detections, every FULL_EVERY predicted frames (and on every frame while no face
# is followed), each face is looked for only in a window around its last box, SEARCH_GROW times its
# side, shrunk so that the face is SEARCH_FACE pixels there, at SEARCH_SIZES of its last size. On the
# benchmark's clip (2 cores): sizes 0.8-1.25, 4.0 ms a face; 0.9-1.12, 2.0 ms, boxes within 4 px of
# a full-frame detection's (a 209 px face) either way; a whole frame takes 15 ms. A face that grows or
# shrinks faster than that between predicted frames is found again by the next full detection.
FULL_EVERY = 10
SEARCH_GROW = 1.6
SEARCH_FACE = 60
SEARCH_SIZES = (0.9, 1.12)   # the face sizes looked for there, relative to its last box


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


def search_near(gray, box):
    """The face of a (h, w) uint8 frame nearest to where `box` (x, y, width, height) was, found in
    a window around it; None when none is there."""
    x, y, width, height = box
    side = max(width, height)
    half = SEARCH_GROW * side / 2
    left, top = max(0, round(x + width / 2 - half)), max(0, round(y + height / 2 - half))
    right, bottom = min(gray.shape[1], round(x + width / 2 + half)), min(gray.shape[0], round(y + height / 2 + half))
    if right - left < MIN_FACE or bottom - top < MIN_FACE:
        return None
    scale = min(1.0, SEARCH_FACE / side)
    window = gray[top:bottom, left:right]
    small = cv2.resize(window, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else window
    least, most = (round(size * side * scale) for size in SEARCH_SIZES)
    found = cascade().detectMultiScale(small, scaleFactor=1.1, minNeighbors=5, minSize=(least, least),
                                       maxSize=(most, most))
    if not len(found):
        return None
    boxes = np.rint(np.asarray(found, np.float64).reshape(-1, 4) / scale).astype(int) + [left, top, 0, 0]
    best = max(boxes.tolist(), key=lambda candidate: iou(candidate, box))
    return best if iou(best, box) > 0 else None


class FaceFinder:
    """The faces of consecutive frames: the whole frame searched (faces.detect_faces at DETECT_SIDE)
    every FULL_EVERY frames and whenever no face is followed; in between, each face of the frame
    before searched for near its box (search_near), which follows faces at a fraction of the cost."""

    def __init__(self, full_every=FULL_EVERY):
        self.full_every = full_every
        self.frames = 0
        self.boxes = []

    def __call__(self, gray):
        """find_faces' dicts (box, crop) for the next frame, a (h, w) uint8 array."""
        if self.frames % self.full_every == 0 or not self.boxes:
            boxes = [box.tolist() for box in detect_faces(gray, DETECT_SIDE)]
        else:
            boxes = []
            for box in (search_near(gray, box) for box in self.boxes):
                if box is not None and all(iou(box, other) < 0.5 for other in boxes):   # two tracks, one face
                    boxes.append(box)
            boxes.sort()
        self.frames += 1
        self.boxes = boxes
        return [{"box": [int(v) for v in box], "crop": list(square_box(box))} for box in boxes]


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


class DrawingWriter:
    """Draws and encodes frames in a thread of its own (OpenCV releases the GIL), while the caller
    detects and predicts the next ones: 2.5 of the 15 ms a frame took on 2 cores. At most
    2 x FRAMES_PER_BATCH frames wait in its queue."""

    def __init__(self, path, fps, width, height):
        self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FOURCC), fps, (width, height))
        if not self.writer.isOpened():
            raise PipelineError(f"{path}: OpenCV cannot write {FOURCC} video here")
        self.frames = queue.Queue(maxsize=2 * FRAMES_PER_BATCH)
        self.error = None
        self.thread = threading.Thread(target=self._work, name="video-writer", daemon=True)
        self.thread.start()

    def write(self, frame, faces):
        if self.error:
            raise self.error
        self.frames.put((frame, faces))

    def close(self):
        self.frames.put(None)
        self.thread.join()
        self.writer.release()
        if self.error:
            raise self.error

    def _work(self):
        while (item := self.frames.get()) is not None:
            if self.error is None:
                try:
                    self.writer.write(draw(*item))
                except Exception as error:   # raised in the caller's thread, at its next write or close
                    self.error = error


def detected(capture, finder, every=1):
    """Batches of FRAMES_PER_BATCH frames read from `capture`: [(index, frame, gray, faces found)],
    gray and faces None on the frames not predicted (`every`)."""
    batch, index = [], 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index % every == 0:
            gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            batch.append((index, frame, gray, finder(gray)))
        else:
            batch.append((index, frame, None, None))
        index += 1
        if len(batch) == FRAMES_PER_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def ahead(items, depth=2):
    """Iterate `items` in a thread of its own, at most `depth` items ahead of the caller: the next
    frames are read and their faces found while the models answer these (overlapping OpenCV and
    TensorFlow, which both release the GIL). Its exceptions come out here; leaving the loop early
    stops it."""
    pending, stop, end = queue.Queue(maxsize=depth), threading.Event(), object()

    def put(item):
        while not stop.is_set():
            try:
                pending.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work():
        try:
            for item in items:
                if not put(item):
                    return
            put(end)
        except BaseException as error:   # handed to the caller, raised there
            put(error)

    thread = threading.Thread(target=work, name="video-reader", daemon=True)
    thread.start()
    try:
        while (item := pending.get()) is not end:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


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
            writer = DrawingWriter(video_path, fps, width, height)
            rows = csv.writer(table)
            rows.writerow(csv_header(predictors))

            def flush(batch):
                nonlocal carried
                chosen = [(index, gray, found) for index, _, gray, found in batch if found is not None]
                answered = dict(zip([index for index, _, _ in chosen],
                                    answer_faces([gray for _, gray, _ in chosen], [found for *_, found in chosen],
                                                 predictors)))
                for index, frame, _, _ in batch:
                    predicted = index in answered
                    if predicted:
                        carried = tracker.assign(answered[index])
                        counts["predicted_frames"] += 1
                        counts["faces"] += len(carried)
                    writer.write(frame, carried)
                    for face in carried:
                        rows.writerow(csv_row(index, index / fps, predicted, face, predictors))
                        counts["ids"].add(face["id"])
                counts["frames"] += len(batch)
                if progress:
                    rate = counts["frames"] / max(time.perf_counter() - started, 1e-9)
                    bar.update(len(batch), f"{rate:.1f} frames/s")

            try:
                with contextlib.closing(ahead(detected(capture, FaceFinder(), every))) as batches:
                    for batch in batches:   # closing: the reading thread has stopped before capture.release()
                        flush(batch)
            finally:
                writer.close()
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
