"""faces: find faces in an image, crop each like the competitions' images, predict them in batches
and draw the answers. photos, video and the server all come here, so a face gets the same answer
(the same JSON) whichever way it arrives.

A photograph is nothing like the competitions' images, so each face is first made to look like one:
OpenCV's Haar cascade (shipped inside opencv-python-headless, nothing downloaded) finds it; the box
is squared and enlarged by MARGIN to frame the face about as the training images do; the square is
cut out in grayscale (edge pixels repeated where it leaves the image) and resized to each run's
input. Keypoints come back in the crop's pixels and are mapped into the image's. Coordinates are
pixel centres throughout (pixel i sits at i, as in augment.flip_keypoints), so the mapping is exact
for cv2.resize.
"""
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.core.competitions import KEYPOINT_NAMES
from pipeline.core.recipes import TTA_VIEWS
from pipeline.data.scale import pixels_to_unit
from pipeline.inference.tta import predict_keypoints, predict_probabilities
CASCADE = "haarcascade_frontalface_default.xml"
# The square crop's side is 1.2x the Haar box's. On real training faces enlarged to 300 px and pasted
# into 640x480 photographs, the Haar box is 0.94x the face image's side (median, both competitions).
# Margins 0 / 0.1 / 0.2 / 0.3 gave FER2013 accuracy 0.70 / 0.72 / 0.73 / 0.66 (0.74 on the 48x48
# originals, 197 PrivateTest faces) and keypoint RMSE 2.85 / 2.88 / 3.06 / 3.33 px (2.16 on the
# originals, 213 faces): 0.2 suits expressions and costs keypoints little.
MARGIN = 0.2
MIN_FACE = 30         # pixels, at detection scale: smaller faces hold too little for a 48x48 crop
# Haar detection time grows with the pixel count: on 2 CPU cores 0.6 s at 1000x750, 13 s at 4000x3000.
# Larger photographs are detected at this longest side, and the boxes scaled back.
DETECT_SIDE = 1280
_per_thread = threading.local()
# The models' input shapes (see tta.predict_batches): the faces of a call and their TTA views go in
# batches of the smallest size that holds them, else of the largest. A photo's face and its mirror
# fill one batch of 8; video's 16 frames of a face and their mirrors one of 32.
BATCH_SIZES = (8, 32)
# Faces from photographs, video and requests get at most the image and its mirror. A run's ten-view
# "multi" TTA (what `fast` submits both competitions with) would cost five times the model passes for
# about 0.02 px or 0.4 points of accuracy (docs/results.md).
LIVE_TTA = "flip"


# --- geometry: pure functions on boxes and points ------------------------------------------------

def square_box(box, margin=MARGIN):
    """A detection box (x, y, width, height) -> the square crop (x, y, side) around the same centre,
    `margin` larger than the box's longer side; integers, and it may reach beyond the image."""
    x, y, width, height = box
    side = round(max(width, height) * (1 + margin))   # Python ints, numpy's too: ready for JSON
    return (round(x + width / 2 - side / 2), round(y + height / 2 - side / 2), side)


def crop_square(gray, square, size):
    """(h, w) uint8 image -> (size, size) uint8: the square (x, y, side) resized, with the image's
    edge pixels repeated where the square leaves it."""
    x, y, side = square
    height, width = gray.shape
    top, left = min(max(y, 0), height), min(max(x, 0), width)
    bottom, right = max(min(y + side, height), top), max(min(x + side, width), left)
    inside = gray[top:bottom, left:right]
    padded = np.pad(inside, ((top - y, y + side - bottom), (left - x, x + side - right)), mode="edge")
    # Shrinking, INTER_AREA averages the pixels each crop pixel covers (no aliasing); enlarging, it is
    # near nearest-neighbour, so a small face is interpolated linearly instead.
    interpolation = cv2.INTER_AREA if side >= size else cv2.INTER_LINEAR
    return cv2.resize(padded, (size, size), interpolation=interpolation)


def crop_to_image(points, square, size):
    """(n, 2k) points as x1, y1, x2, y2, ... in a size x size crop's pixels -> the same points in
    pixels of the image the square (x, y, side) was cut from, float64."""
    x, y, side = square
    scale = side / size
    points = (np.asarray(points, np.float64) + 0.5) * scale - 0.5   # cv2.resize's pixel-centre mapping
    return points + np.tile([x, y], points.shape[-1] // 2)


# --- trained runs ---------------------------------------------------------------------------------

@dataclass
class Predictor:
    """A trained run, loaded once, answering for (n, size, size) uint8 face crops."""
    task: str
    run: str
    size: int
    models: list
    tta: str
    scaling: object = None   # keypoints: scale.KeypointScaling
    classes: tuple = ()      # expressions: class names, in output order

    def __call__(self, crops):
        """Keypoints (n, 30) in the crop's pixels, clipped to it; or probabilities (n, classes)."""
        images = pixels_to_unit(crops)
        rows = len(images) * len(TTA_VIEWS[self.tta])
        batch_size = next((size for size in BATCH_SIZES if rows <= size), BATCH_SIZES[-1])
        if self.task == "keypoints":
            keypoints = predict_keypoints(self.models, images, self.scaling, batch_size, self.tta)
            return np.clip(keypoints, 0, self.size - 1)
        return predict_probabilities(self.models, images, batch_size, self.tta)

    def warm_up(self):
        """Trace each input shape now, not on the first faces (a few hundred ms each)."""
        for size in BATCH_SIZES:
            self(np.zeros((max(1, size // len(TTA_VIEWS[self.tta])), self.size, self.size), np.uint8))
        return self


class OneCallPerBatch:
    """A Keras model whose `predict` (what tta.predict_batches calls) runs each batch through
    predict_on_batch. model.predict sets up its data pipeline on every call: for 8 faces it took
    87 ms (compact_vgg) and 156 ms (kaggle_cnn) against 7 and 15 ms this way (2 shared CPU cores),
    and photos, video frames and requests come a few faces at a time."""

    def __init__(self, model):
        self.model = model

    def predict(self, images, batch_size, verbose=0):
        return np.concatenate([np.asarray(self.model.predict_on_batch(images[start:start + batch_size]))
                               for start in range(0, len(images), batch_size)])


def live_tta(run):
    """The test-time augmentation faces get from a run (a RunDir): its recipe's, or LIVE_TTA where that
    has more views."""
    return run.tta if len(TTA_VIEWS[run.tta]) <= len(TTA_VIEWS[LIVE_TTA]) else LIVE_TTA


def load_predictor(run):
    """The Predictor of a run (a RunDir: one run or an ensemble), with its live test-time augmentation."""
    return Predictor(run.task, run.name, int(run.input_shape[0]), [OneCallPerBatch(m) for m in run.load_models()],
                     live_tta(run), run.scaling, run.classes)


# --- finding, answering, drawing --------------------------------------------------------------

def cascade():
    """OpenCV's frontal-face Haar cascade, one per thread: a CascadeClassifier keeps its working images
    in itself, so the server's detecting threads must not share one."""
    if not hasattr(_per_thread, "cascade"):
        _per_thread.cascade = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADE)
    return _per_thread.cascade


def detect_faces(gray, side=DETECT_SIDE):
    """(h, w) uint8 -> (n, 4) int boxes (x, y, width, height), left to right; detected with the
    image's longest side shrunk to `side` pixels if it is longer."""
    shrink = min(1.0, side / max(gray.shape))
    small = cv2.resize(gray, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA) if shrink < 1 else gray
    found = cascade().detectMultiScale(small, scaleFactor=1.1, minNeighbors=5, minSize=(MIN_FACE, MIN_FACE))
    boxes = np.rint(np.asarray(found, np.float64).reshape(-1, 4) / shrink).astype(int)
    return boxes[np.lexsort((boxes[:, 1], boxes[:, 0]))]


def find_faces(gray, detect_side=DETECT_SIDE):
    """The faces of a (h, w) uint8 image as JSON-ready dicts: the Haar box and the square crop the
    models will see, left to right; no answers yet (see answer_faces)."""
    return [{"box": [int(v) for v in box], "crop": list(square_box(box))} for box in detect_faces(gray, detect_side)]


def answer_faces(grays, found, predictors):
    """Fill in each face of `found` (one list of find_faces dicts per image of `grays`) with the
    answers of `predictors` (task -> Predictor), in its image's pixels: one batch per task for the
    faces of every image at once. Returns `found`."""
    pairs = [(gray, face) for gray, faces in zip(grays, found) for face in faces]
    if not pairs:
        return found
    for task, predictor in predictors.items():
        crops = np.stack([crop_square(gray, face["crop"], predictor.size) for gray, face in pairs])
        for (_, face), answer in zip(pairs, predictor(crops)):
            if task == "keypoints":
                points = crop_to_image(answer, face["crop"], predictor.size).reshape(-1, 2)
                face["keypoints"] = {name: [round(float(x), 2), round(float(y), 2)]
                                     for name, (x, y) in zip(KEYPOINT_NAMES, points)}
            else:
                face["probabilities"] = {name: float(p) for name, p in zip(predictor.classes, answer)}
                face["expression"] = predictor.classes[int(np.argmax(answer))]
    return found


def describe_faces(gray, predictors):
    """Every face of a (h, w) uint8 image as a JSON-ready dict: its Haar box, the square crop the
    models saw, and the answers of `predictors` (task -> Predictor) in the image's pixels."""
    return answer_faces([gray], [find_faces(gray)], predictors)[0]


def annotate(image, faces):
    """A copy of the (h, w, 3) BGR image with each face's box, keypoints and top expression drawn."""
    drawn = image.copy()
    for face in faces:
        x, y, width, height = face["box"]
        thickness = max(1, round(width / 100))
        cv2.rectangle(drawn, (x, y), (x + width, y + height), (0, 255, 0), thickness)
        for px, py in face.get("keypoints", {}).values():
            cv2.circle(drawn, (round(px), round(py)), thickness + 1, (0, 0, 255), -1, cv2.LINE_AA)
        if "expression" in face:
            label = f"{face['expression']} {face['probabilities'][face['expression']]:.0%}"
            font_scale = max(0.4, width / 250)
            (text_width, text_height), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
            top = max(y - text_height - 2 * thickness, 0)   # above the box, or inside it at the very top
            cv2.rectangle(drawn, (x, top), (x + text_width, top + text_height + 2 * thickness), (0, 255, 0), -1)
            cv2.putText(drawn, label, (x, top + text_height + thickness), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                        (0, 0, 0), thickness, cv2.LINE_AA)
    return drawn
