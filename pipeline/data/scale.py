"""scale: images to the (n, h, w, 1) layout models take; keypoints to [-1, 1] by a fitted KeypointScaling.

Images stay uint8 on disk and in memory (FER2013's Training: 66 MB, against 265 MB as float32) and
become float32 in [0, 1] (`to_unit`) only as a batch is formed: by augment.Batches in training and
by predict.predict_batches everywhere a model predicts.

The scaling is plain JSON (scaling.json, no pickle) with `transform` / `inverse_transform`, and
training copies it into the run folder, so a run's predictions are always mapped back to pixels
with the very numbers that scaled its targets, whatever `scale` wrote since. Two ranges:
- "image": fitted on the image bounds 0..96, i.e. the reference (y - 48) / 48 for every column;
- "data": fitted on the training keypoints, each column's observed min..max to -1..1.
"""
from dataclasses import dataclass

import numpy as np

from pipeline.core import defaults
from pipeline.core.competitions import KEYPOINTS
from pipeline.core.fileio import load_arrays, read_json, save_arrays, write_json
from pipeline.core.layout import ARRAYS, CLEAN_ARRAYS, META, SCALING

IMAGE_SIDE = float(KEYPOINTS.image_size)   # keypoints are pixels of the 96x96 image


def to_unit(images):
    """Images as models take them, float32 in [0, 1]: uint8 pixels divided by 255; float images
    (cached by a version that stored them scaled) pass through."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(255)
    return np.asarray(images, np.float32)


def pixels_to_unit(images):
    """(n, h, w) uint8 -> (n, h, w, 1) float32 in [0, 1]."""
    return to_unit(images[..., None])


@dataclass(frozen=True)
class KeypointScaling:
    """Maps each keypoint column's [low, high] (pixels) to [-1, 1]; NaN stays NaN."""
    low: tuple
    high: tuple

    def transform(self, pixels):
        low, high = np.asarray(self.low), np.asarray(self.high)
        return ((np.asarray(pixels, np.float64) - low) / (high - low) * 2 - 1).astype(np.float32)

    def inverse_transform(self, scaled):
        low, high = np.asarray(self.low), np.asarray(self.high)
        return ((np.asarray(scaled, np.float64) + 1) / 2 * (high - low) + low).astype(np.float32)

    def to_json(self):
        return {"low": list(self.low), "high": list(self.high)}

    @classmethod
    def from_json(cls, data):
        return cls(tuple(float(v) for v in data["low"]), tuple(float(v) for v in data["high"]))


def fit_keypoint_scaling(keypoints, keypoint_range=defaults.KEYPOINT_RANGE):
    """A KeypointScaling for (n, k) pixel keypoints (NaN where missing)."""
    columns = np.asarray(keypoints).shape[1]
    if keypoint_range == "image":
        low, high = np.zeros(columns), np.full(columns, IMAGE_SIDE)
    elif keypoint_range == "data":
        low, high = np.nanmin(keypoints, axis=0), np.nanmax(keypoints, axis=0)
        flat = ~(high > low)   # a column with one value (or none): keep the image's bounds
        low[flat], high[flat] = 0.0, IMAGE_SIDE
    else:
        raise ValueError(f"unknown keypoint range {keypoint_range!r}")
    return KeypointScaling(tuple(map(float, low)), tuple(map(float, high)))


def load_scaling(path):
    return KeypointScaling.from_json(read_json(path))


def run(competition, interim, out, keypoint_range=defaults.KEYPOINT_RANGE):
    arrays = load_arrays(interim / CLEAN_ARRAYS)
    meta = read_json(interim / META)
    scaled = {"train_x": arrays["train_images"][..., None], "test_x": arrays["test_images"][..., None]}
    if competition.task == "keypoints":
        scaling = fit_keypoint_scaling(arrays["train_keypoints"], keypoint_range)
        scaled["train_y"] = scaling.transform(arrays["train_keypoints"])
        scaled["test_ids"] = arrays["test_ids"]
        write_json(out / SCALING, scaling.to_json())
    else:
        for key in ("train_labels", "train_distribution", "test_labels", "test_distribution", "test_usage",
                    "test_plurality_labels"):   # the last: FERPlus only
            if key in arrays:
                scaled[key] = arrays[key]
    save_arrays(out / ARRAYS, **scaled)
    write_json(out / META, meta)
    return {"train_rows": int(len(scaled["train_x"])), "test_rows": int(len(scaled["test_x"])),
            "pixel_range": [int(scaled["train_x"].min()), int(scaled["train_x"].max())]}
