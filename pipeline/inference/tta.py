"""Batched prediction with test-time augmentation: the one path by which every model predicts.

Training's validation, predict, the report, photos and the server all come here. Views (mirrored,
dx, dy) are recipes.TTA_VIEWS; each view's keypoints are moved back and un-mirrored before the
views, and the models of an ensemble, are averaged.
"""
import numpy as np

from pipeline.core.recipes import TTA_VIEWS
from pipeline.data.mirror import flip_images, flip_keypoints
from pipeline.data.scale import to_unit

VIEW_CHUNK = 256    # images whose views are stacked at once: bounds the memory of ten-view TTA on a test set


def predict_batches(model, images, batch_size):
    """Model outputs for (n, h, w, c) images (uint8, or float32 in [0, 1]) as float32, run in batches
    of exactly `batch_size`.

    The last partial batch is padded with copies of its final image and the copies' outputs dropped:
    every call sees one input shape, so the prediction function is traced once and no kernel meets
    an odd leftover batch size (see pipeline/models/layers.py on oneDNN). Inference mode makes each
    image's output independent of its batch-mates.
    """
    images = to_unit(images)
    n = len(images)
    full = n - n % batch_size
    parts = []
    if full:
        parts.append(model.predict(images[:full], batch_size=batch_size, verbose=0))
    if full < n:
        tail = images[full:]
        padded = np.concatenate([tail, np.repeat(tail[-1:], batch_size - len(tail), axis=0)])
        parts.append(model.predict(padded, batch_size=batch_size, verbose=0)[:len(tail)])
    return np.concatenate(parts).astype(np.float32)


def view(images, mirrored, dx, dy):
    """(n, h, w, c) images mirrored, then moved right by dx and down by dy pixels (the border
    pixels repeat into the gap)."""
    if mirrored:
        images = flip_images(images)
    if dx or dy:
        pad = max(abs(dx), abs(dy))
        height, width = images.shape[1:3]
        padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
        images = padded[:, pad - dy:pad - dy + height, pad - dx:pad - dx + width]
    return np.ascontiguousarray(images)


def predict_views(model, images, views, batch_size):
    """The model's outputs for each of `views` of (n, h, w, c) images: (len(views), n, ...). The
    views of VIEW_CHUNK images at a time go through the model together, so a few faces and their
    mirrors fill one batch instead of a padded batch per view (video and the server predict a few
    faces at a time; 16 faces with flip: 13 ms in one batch of 32, 26 ms in two of 16, heatmap_keypoints
    on 2 cores)."""
    parts = []
    for start in range(0, len(images), VIEW_CHUNK):
        chunk = images[start:start + VIEW_CHUNK]
        outputs = predict_batches(model, np.concatenate([view(chunk, *v) for v in views]), batch_size)
        parts.append(outputs.reshape(len(views), len(chunk), *outputs.shape[1:]))
    return np.concatenate(parts, axis=1)


def predict_keypoints(models, images, scaling, batch_size, tta="none"):
    """(n, 30) keypoints in pixels (not clipped), averaged over `models` (a list) and the TTA views,
    each view's keypoints moved back and un-mirrored first."""
    def undo(scaled, mirrored, dx, dy):
        keypoints = scaling.inverse_transform(scaled)
        keypoints[:, 0::2] -= dx
        keypoints[:, 1::2] -= dy
        return flip_keypoints(keypoints, images.shape[2]) if mirrored else keypoints

    views = TTA_VIEWS[tta]
    return np.mean([undo(scaled, *v) for model in models
                    for scaled, v in zip(predict_views(model, images, views, batch_size), views)], axis=0)


def predict_probabilities(models, images, batch_size, tta="none"):
    """(n, classes) class probabilities, averaged over `models` (a list) and the TTA views."""
    return np.mean([outputs for model in models
                    for outputs in predict_views(model, images, TTA_VIEWS[tta], batch_size)], axis=0)
