"""The built-in sample: synthetic faces written in the exact Kaggle file formats.

Faces are drawn with numpy: an outline, eyes, brows, nose and mouth whose positions are exactly the
15 keypoints, under a random shift, scale, small rotation, lighting and noise. An expression moves the
drawing (mouth curve and openness, brow height and angle, eye opening, a one-sided smirk), so each
class is recognisable but not trivially: every expression parameter is jittered around its class mean.
"""
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.core.competitions import (
    EXPRESSIONS, FERPLUS_CLASSES, FERPLUS_TO_FER2013, FERPLUS_VOTE_COLUMNS, KEYPOINT_COLUMNS, KEYPOINT_NAMES, KEYPOINTS,
    PARTIAL_KEYPOINTS, USAGES,
)

SIZE = KEYPOINTS.image_size   # keypoints are defined on 96x96 images; expression faces are drawn scaled to 48x48

# Neutral face, (x, y) offsets in pixels from the face centre, close to the means of the real data.
# "left" is the subject's left, which appears on the right of the image.
NEUTRAL = {
    "left_eye_center": (18, -10), "right_eye_center": (-18, -10),
    "left_eye_inner_corner": (11, -10), "left_eye_outer_corner": (25, -10),
    "right_eye_inner_corner": (-11, -10), "right_eye_outer_corner": (-25, -10),
    "left_eyebrow_inner_end": (8, -19), "left_eyebrow_outer_end": (31, -18),
    "right_eyebrow_inner_end": (-8, -19), "right_eyebrow_outer_end": (-31, -18),
    "nose_tip": (0, 14),
    "mouth_left_corner": (15, 28), "mouth_right_corner": (-15, 28),
    "mouth_center_top_lip": (0, 25), "mouth_center_bottom_lip": (0, 31),
}

# Expression parameters: smile (corners up), mouth opening, mouth width, brow raise, brow tilt
# (inner ends down, as in anger), eye opening, smirk (left corner only up), nose wrinkle.
PARAMS = ("smile", "open", "width", "brow_raise", "brow_tilt", "eye_open", "smirk", "wrinkle")
# Class means in FERPlus order: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt.
CLASS_MEANS = np.array([
    [0.0, 0.05, 1.00, 0.0, 0.0, 1.0, 0.0, 0.0],
    [0.9, 0.40, 1.20, 0.1, 0.0, 0.8, 0.0, 0.0],
    [0.0, 0.90, 0.75, 1.0, -0.2, 1.5, 0.0, 0.0],
    [-0.7, 0.05, 0.95, 0.2, -0.8, 0.8, 0.0, 0.0],
    [-0.3, 0.10, 0.85, -0.5, 1.0, 0.7, 0.0, 0.2],
    [-0.4, 0.30, 0.80, -0.3, 0.6, 0.6, 0.3, 1.0],
    [-0.2, 0.50, 1.25, 0.8, -0.5, 1.4, 0.0, 0.0],
    [0.1, 0.00, 1.00, 0.0, 0.0, 0.9, 1.0, 0.0],
], dtype=np.float32)
PARAM_JITTER = np.array([0.25, 0.12, 0.08, 0.25, 0.25, 0.15, 0.2, 0.2], dtype=np.float32)
# How often each true class occurs; close to FER2013's own balance (happy most common, disgust rare).
CLASS_FREQUENCY = np.array([0.18, 0.24, 0.11, 0.16, 0.13, 0.02, 0.13, 0.03])
FER2013_LABEL_NOISE = 0.12   # FER2013's single labels disagree with the crowd more often than FERPlus
NOT_A_FACE_RATE = 0.02


@dataclass(frozen=True)
class SampleSizes:
    """Rows of the default sample: enough for the default models to learn it clearly, few enough
    that `run.py all` trains both in about five minutes on two CPU cores."""
    keypoints_train: int = 500
    keypoints_test: int = 120
    expressions: int = 1350   # split 80/10/10 into Training, PublicTest, PrivateTest

    def scaled(self, fraction):
        """Every size times `fraction` (at least 10 rows each), for quick runs and tests."""
        return SampleSizes(*(max(10, round(n * fraction)) for n in
                             (self.keypoints_train, self.keypoints_test, self.expressions)))


def expression_params(classes, rng):
    """Per-face expression parameters (n, 8): the class mean plus jitter."""
    noise = rng.normal(size=(len(classes), len(PARAMS))).astype(np.float32)
    return CLASS_MEANS[classes] + noise * PARAM_JITTER


def face_keypoints(params, rng):
    """Keypoints (n, 30) in pixels and the pose used to place them."""
    n = len(params)
    smile, opening, width, brow_raise, brow_tilt, _, smirk, _ = params.T
    points = np.broadcast_to(np.array([NEUTRAL[k] for k in KEYPOINT_NAMES], np.float32), (n, 15, 2)).copy()
    index = {name: i for i, name in enumerate(KEYPOINT_NAMES)}
    for side, sign in (("left", 1), ("right", -1)):
        corner = index[f"mouth_{side}_corner"]
        points[:, corner, 0] = sign * 15 * width
        points[:, corner, 1] -= 4 * smile + (3 * smirk if side == "left" else 0)
        for end, tilt in (("inner", 1.0), ("outer", -0.3)):
            brow = index[f"{side}_eyebrow_{end}_end"]
            points[:, brow, 1] += -4 * brow_raise + 3 * tilt * brow_tilt
    points[:, index["mouth_center_top_lip"], 1] -= 2 * opening
    points[:, index["mouth_center_bottom_lip"], 1] += 8 * opening

    pose = {
        "centre": 48 + rng.normal(0, 3.0, size=(n, 2)).astype(np.float32),
        "scale": rng.uniform(0.85, 1.1, size=n).astype(np.float32),
        "angle": np.deg2rad(rng.normal(0, 6, size=n)).astype(np.float32),
    }
    placed = _place(points, pose)
    return placed.reshape(n, 30), pose


def _place(offsets, pose):
    """Rotate, scale and shift (n, k, 2) offsets from the face centre into image coordinates."""
    cos, sin = np.cos(pose["angle"]), np.sin(pose["angle"])
    rotation = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)  # (n, 2, 2)
    return pose["centre"][:, None] + pose["scale"][:, None, None] * offsets @ rotation.transpose(0, 2, 1)


def _offset(vector, pose):
    """A face-frame offset (x, y) rotated and scaled into image coordinates, per face (n, 2)."""
    n = len(pose["scale"])
    return _place(np.tile(np.float32([[vector]]), (n, 1, 1)), pose)[:, 0] - pose["centre"]


def render(keypoints, params, pose, rng, size=SIZE, chunk=256):
    """Draw faces (n, size, size) uint8 whose features sit exactly on `keypoints` (n, 30).

    Keypoints are in 96x96 pixels; a smaller `size` draws the same face scaled down.
    """
    shrink = size / SIZE
    images = np.empty((len(keypoints), size, size), np.uint8)
    for start in range(0, len(keypoints), chunk):
        part = slice(start, start + chunk)
        sub_pose = {"centre": pose["centre"][part] * shrink, "scale": pose["scale"][part] * shrink,
                    "angle": pose["angle"][part]}
        points = keypoints[part].reshape(-1, 15, 2) * shrink
        images[part] = _render_chunk(points, params[part], sub_pose, rng, size)
    return images


def _render_chunk(points, params, pose, rng, size):
    n = len(points)
    grid_y, grid_x = np.mgrid[0:size, 0:size].astype(np.float32)
    at = {name: points[:, i] for i, name in enumerate(KEYPOINT_NAMES)}
    scale, angle = pose["scale"], pose["angle"]
    col = lambda v: np.asarray(v, np.float32).reshape(-1, 1, 1)  # noqa: E731  per-face scalar

    background = rng.uniform(0.15, 0.55, n).astype(np.float32)
    skin = background + rng.uniform(0.2, 0.35, n).astype(np.float32)
    ink = skin - rng.uniform(0.35, 0.5, n).astype(np.float32)
    gradient = rng.normal(0, 0.002, (n, 2)).astype(np.float32)
    canvas = col(background) + col(gradient[:, 0]) * (grid_x - 48) + col(gradient[:, 1]) * (grid_y - 48)

    def paint(alpha, value):
        nonlocal canvas
        canvas = canvas * (1 - alpha) + col(value) * alpha

    def ellipse(centre, rx, ry, tilt, soft=1.0):
        dx, dy = grid_x - col(centre[:, 0]), grid_y - col(centre[:, 1])
        cos, sin = col(np.cos(tilt)), col(np.sin(tilt))
        u, v = dx * cos + dy * sin, -dx * sin + dy * cos
        radius = np.sqrt((u / col(rx)) ** 2 + (v / col(ry)) ** 2)
        return np.clip((1 - radius) * col(np.minimum(rx, ry)) / soft + 0.5, 0, 1)

    def stroke(polyline, width):
        """Anti-aliased polyline through points (n, k, 2)."""
        squared = np.full(canvas.shape, np.inf, np.float32)
        for a, b in zip(polyline[:, :-1].transpose(1, 0, 2), polyline[:, 1:].transpose(1, 0, 2)):
            abx, aby = col(b[:, 0] - a[:, 0]), col(b[:, 1] - a[:, 1])
            dx, dy = grid_x - col(a[:, 0]), grid_y - col(a[:, 1])
            t = np.clip((dx * abx + dy * aby) / np.maximum(abx * abx + aby * aby, 1e-6), 0, 1)
            dx -= t * abx
            dy -= t * aby
            np.minimum(squared, dx * dx + dy * dy, out=squared)
        return np.clip(col(width) / 2 + 0.5 - np.sqrt(squared), 0, 1)

    def curve(start, through, end, steps=7):
        """Quadratic Bezier from start to end passing through `through` at its middle."""
        control = 2 * through - (start + end) / 2
        t = np.linspace(0, 1, steps, dtype=np.float32)[None, :, None]
        return (1 - t) ** 2 * start[:, None] + 2 * t * (1 - t) * control[:, None] + t ** 2 * end[:, None]

    face_centre = pose["centre"] + _offset((0, 4), pose)
    paint(ellipse(face_centre, 33 * scale, 43 * scale, angle, soft=1.5), skin)

    eye_open = params[:, PARAMS.index("eye_open")]
    for side in ("left", "right"):
        inner, outer = at[f"{side}_eye_inner_corner"], at[f"{side}_eye_outer_corner"]
        half_width = np.linalg.norm(outer - inner, axis=1) / 2
        paint(0.8 * ellipse((inner + outer) / 2, half_width, np.maximum(3.2 * eye_open * scale, 0.8), angle), ink)
        paint(ellipse(at[f"{side}_eye_center"], 1.8 * scale, 1.8 * scale, angle), ink - 0.15)
        brow_inner, brow_outer = at[f"{side}_eyebrow_inner_end"], at[f"{side}_eyebrow_outer_end"]
        arch = (brow_inner + brow_outer) / 2 + _offset((0, -2), pose)   # brows arch 2 px upwards
        paint(stroke(curve(brow_inner, arch, brow_outer, 5), 2.6 * scale), ink)

    nose = at["nose_tip"]
    bridge = (at["left_eye_inner_corner"] + at["right_eye_inner_corner"]) / 2
    paint(0.5 * stroke(np.stack([bridge, nose], 1), 1.5 * scale), ink + 0.1)
    paint(ellipse(nose, 4.0 * scale, 2.0 * scale, angle), ink)
    wrinkle = params[:, PARAMS.index("wrinkle")]
    wrinkle_line = np.stack([bridge * 0.6 + nose * 0.4 - 3, bridge * 0.6 + nose * 0.4 + 3], 1)
    paint(np.clip(wrinkle - 0.4, 0, 1)[:, None, None] * stroke(wrinkle_line, 1.2 * scale), ink)

    left, right = at["mouth_left_corner"], at["mouth_right_corner"]
    top, bottom = at["mouth_center_top_lip"], at["mouth_center_bottom_lip"]
    opening = np.maximum(np.linalg.norm(bottom - top, axis=1) / 2 - 2.5 * scale, 0)
    mouth_width = np.linalg.norm(left - right, axis=1) / 2
    paint(np.minimum(opening, 1)[:, None, None] * ellipse((top + bottom) / 2, 0.8 * mouth_width,
                                                          np.maximum(opening, 0.5), angle), ink - 0.1)
    paint(stroke(curve(right, top, left), 1.8 * scale), ink)
    paint(stroke(curve(right, bottom, left), 2.2 * scale), ink)

    gain = rng.uniform(0.75, 1.2, n).astype(np.float32)
    noise = rng.normal(0, rng.uniform(0.01, 0.05, n), (size, size, n)).transpose(2, 0, 1).astype(np.float32)
    image = canvas * col(gain) + noise
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)


def keypoints_arrays(n, rng):
    """Faces for the keypoints task: images (n, 96, 96) uint8 and keypoints (n, 30) float32 pixels."""
    classes = rng.choice(len(CLASS_FREQUENCY), size=n, p=CLASS_FREQUENCY)
    params = expression_params(classes, rng)
    keypoints, pose = face_keypoints(params, rng)
    return render(keypoints, params, pose, rng), keypoints


def expressions_arrays(n, rng):
    """Faces for the expressions task.

    Returns images (n, 48, 48) uint8, FER2013 labels (n,) and FERPlus votes (n, 10) over
    FERPLUS_VOTE_COLUMNS; about 2% of images are not faces and carry mostly "NF" votes.
    """
    true_class = rng.choice(len(CLASS_FREQUENCY), size=n, p=CLASS_FREQUENCY)
    params = expression_params(true_class, rng)
    keypoints, pose = face_keypoints(params, rng)
    images = render(keypoints, params, pose, rng, size=EXPRESSIONS.image_size)
    not_a_face = rng.random(n) < NOT_A_FACE_RATE
    images[not_a_face] = rng.integers(0, 256, size=(not_a_face.sum(), *images.shape[1:]), dtype=np.uint8)

    fer_labels = np.array([FERPLUS_TO_FER2013.get(c, 6) for c in true_class])  # contempt -> Neutral
    relabel = rng.random(n) < FER2013_LABEL_NOISE
    fer_labels[relabel] = rng.integers(0, 7, size=relabel.sum())
    return images, fer_labels, _crowd_votes(true_class, not_a_face, rng)


def _crowd_votes(true_class, not_a_face, rng, annotators=10):
    """FERPlus-style votes: most annotators agree with the drawn class, some pick others or "unknown"."""
    n = len(true_class)
    agreement = rng.uniform(0.45, 0.95, n)
    votes = np.zeros((n, len(FERPLUS_VOTE_COLUMNS)), np.int64)
    for _ in range(annotators):
        choice = np.where(rng.random(n) < agreement, true_class, rng.integers(0, len(FERPLUS_CLASSES) + 1, n))
        choice = np.where(not_a_face & (rng.random(n) < 0.8), len(FERPLUS_VOTE_COLUMNS) - 1, choice)
        votes[np.arange(n), choice] += 1
    return votes


def _pixel_strings(images):
    flat = images.reshape(len(images), -1)
    return [" ".join(map(str, row)) for row in flat.tolist()]


def write_keypoints(folder, rng, sizes=SampleSizes()):
    """training.csv, test.csv, IdLookupTable.csv and SampleSubmission.csv as Kaggle ships them."""
    images, keypoints = keypoints_arrays(sizes.keypoints_train, rng)
    partial_columns = [c for c in KEYPOINT_COLUMNS if c.rsplit("_", 1)[0] in PARTIAL_KEYPOINTS]
    train = pd.DataFrame(keypoints.astype(np.float64), columns=list(KEYPOINT_COLUMNS))
    partial = rng.random(len(train)) > 0.3   # about 30% of rows complete, as in the real data
    train.loc[partial, [c for c in KEYPOINT_COLUMNS if c not in partial_columns]] = np.nan
    train["Image"] = _pixel_strings(images)
    train.to_csv(folder / "training.csv", index=False, float_format="%.10g")

    test_images, _ = keypoints_arrays(sizes.keypoints_test, rng)
    test = pd.DataFrame({"ImageId": np.arange(1, len(test_images) + 1), "Image": _pixel_strings(test_images)})
    test.to_csv(folder / "test.csv", index=False)

    # As in the real table: the first third of the images are asked for all 30 features, the rest for 8.
    full = len(test) // 3
    features = [(image_id, name) for image_id in test.ImageId
                for name in (KEYPOINT_COLUMNS if image_id <= full else partial_columns)]
    lookup = pd.DataFrame(features, columns=["ImageId", "FeatureName"])
    lookup.insert(0, "RowId", np.arange(1, len(lookup) + 1))
    lookup["Location"] = ""
    lookup.to_csv(folder / "IdLookupTable.csv", index=False)
    pd.DataFrame({"RowId": lookup.RowId, "Location": 0}).to_csv(folder / "SampleSubmission.csv", index=False)


def write_expressions(folder, rng, sizes=SampleSizes()):
    """fer2013.csv (emotion,pixels,Usage) and the aligned FERPlus fer2013new.csv."""
    n = sizes.expressions
    images, labels, votes = expressions_arrays(n, rng)
    usage = np.array(USAGES)[np.searchsorted([0.8, 0.9], rng.permutation(n) / n, side="right")]
    pd.DataFrame({"emotion": labels, "pixels": _pixel_strings(images), "Usage": usage}).to_csv(
        folder / "fer2013.csv", index=False)

    ferplus = pd.DataFrame(votes, columns=list(FERPLUS_VOTE_COLUMNS))
    names = pd.Series([f"fer{i:07d}.png" for i in range(n)])
    dropped = rng.random(n) < 0.005   # FERPlus left a few images unnamed and unvoted
    names[dropped] = ""
    ferplus.loc[dropped, :] = 0
    ferplus.insert(0, "Image name", names)
    ferplus.insert(0, "Usage", usage)
    ferplus.to_csv(folder / "fer2013new.csv", index=False)


WRITERS = {"keypoints": write_keypoints, "expressions": write_expressions}


def write_sample(competition, folder, seed, sizes=SampleSizes()):
    """Write the built-in sample for `competition` into `folder` (which must exist)."""
    rng = np.random.default_rng([seed, list(WRITERS).index(competition.task)])
    WRITERS[competition.task](folder, rng, sizes)
