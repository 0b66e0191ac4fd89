"""Batch augmentation in numpy and OpenCV, written once for every model and both backends.

Images are (n, h, w, c) float32 in [0, 1]. Keypoints are (n, 2k) PIXEL coordinates laid out as in
training.csv (x then y per keypoint), NaN where missing; NaN stays NaN through every transform.

Coordinates: the centre of pixel column i is x = i (and of row j is y = j), so an image spans
-0.5 .. w - 0.5 and mirroring it with `images[:, :, ::-1]` sends x to w - 1 - x. Every geometric
change (flip, rotation, zoom, shift) is one affine map per image about the image centre
((w - 1) / 2, (h - 1) / 2), applied to the keypoints directly and to the image by inverse bilinear
sampling, so a dot drawn at a keypoint stays under it.

All randomness comes from the numpy Generator passed in: the same seed gives the same batch.
"""
from dataclasses import dataclass

import cv2  # warpAffine: the geometric part of every batch
import keras  # only for Batches; everything else here is numpy and OpenCV
import numpy as np

from pipeline.core.competitions import KEYPOINT_COLUMNS
from pipeline.data.mirror import flip_permutation, x_columns
from pipeline.data.scale import to_unit


@dataclass(frozen=True)
class AugmentConfig:
    flip: bool = True               # mirror half of the images (and swap left/right keypoints)
    max_shift: float = 0.1          # shift per axis, up to this fraction of the image side
    max_rotation_deg: float = 10.0  # rotation in degrees, uniform in +-max
    zoom: float = 0.1               # scale uniform in 1 +- zoom
    brightness: float = 0.1         # added to every pixel, uniform in +-brightness
    contrast: float = 0.1           # deviation from the image mean scaled by 1 +- contrast
    noise: float = 0.01             # fraction of pixels set to 0 or 1 (salt and pepper)
    erase: float = 0.0              # chance that a random rectangle (2-20% of the image) turns to noise

    @classmethod
    def off(cls):
        return cls(flip=False, max_shift=0.0, max_rotation_deg=0.0, zoom=0.0,
                   brightness=0.0, contrast=0.0, noise=0.0, erase=0.0)

    @property
    def geometric(self):
        return bool(self.flip or self.max_shift or self.max_rotation_deg or self.zoom)

    @property
    def active(self):
        return self != self.off()


# The named strengths a recipe picks (--augment). "strong" follows the published FER2013 recipes:
# about 20% shift, rotation and scale (random resized crops), and random erasing half of the time.
STRENGTHS = {
    "none": AugmentConfig.off(),
    "standard": AugmentConfig(),
    "strong": AugmentConfig(max_shift=0.15, max_rotation_deg=15.0, zoom=0.2, brightness=0.2, contrast=0.2,
                            erase=0.5),
}


# ---------------------------------------------------------------------------------------------
# Random affine maps.

def _random_affines(n, size, rng, config):
    """Per image: a (2, 2) linear part, a pixel shift (x, y), and whether it is mirrored.

    A point p of the input moves to c + A (p - c) + shift, with A = zoom * rotation * mirror.
    """
    height, width = size
    flips = rng.random(n) < 0.5 if config.flip else np.zeros(n, bool)
    angles = np.deg2rad(rng.uniform(-1, 1, n) * config.max_rotation_deg)
    scales = 1 + rng.uniform(-1, 1, n) * config.zoom
    shifts = rng.uniform(-1, 1, (n, 2)) * config.max_shift * np.array([width, height])

    cos, sin = np.cos(angles) * scales, np.sin(angles) * scales
    linear = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)   # (n, 2, 2)
    linear[..., 0] *= np.where(flips, -1.0, 1.0)[:, None]   # mirror first: negate the x column
    return linear, shifts, flips


def _centre(size):
    height, width = size
    return np.array([(width - 1) / 2, (height - 1) / 2])


def warp_images(images, linear, shifts):
    """Move each image by its affine map: out(p') = in(c + A^-1 (p' - c - shift)), sampled
    bilinearly; samples beyond the border repeat the edge pixel (no black corners to learn).

    OpenCV's warpAffine does the sampling, given the inverse map (output pixel -> input point). It
    places pixel centres at whole coordinates, as this module does, and its bilinear weights come
    in steps of 1/32 pixel, so a value can differ from exact sampling by 1/64 of the local
    difference between neighbours. It is 4x (48x48) to 7x (96x96) faster than the vectorised numpy
    warp it replaced, which on two cores took CPU time from the model (docs/results.md, Speed)."""
    n, height, width, channels = images.shape
    centre = _centre((height, width))
    inverse = np.linalg.inv(linear)                                                # (n, 2, 2)
    offset = centre - np.einsum("nij,nj->ni", inverse, centre + shifts)           # (n, 2)
    maps = np.concatenate([inverse, offset[:, :, None]], axis=2)                  # (n, 2, 3)
    images = np.ascontiguousarray(images, np.float32)
    out = np.empty_like(images)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    for image, inverse_map, moved in zip(images, maps, out):
        # warpAffine drops a trailing channel axis of 1; reshaping restores it
        moved[...] = cv2.warpAffine(image, inverse_map, (width, height), flags=flags,
                                    borderMode=cv2.BORDER_REPLICATE).reshape(height, width, channels)
    return out


def move_keypoints(keypoints_px, linear, shifts, size, flips, columns=KEYPOINT_COLUMNS):
    """The same affine maps applied to (n, 2k) keypoints; mirrored rows get left/right swapped.
    Points pushed outside the frame keep their coordinates: they are still valid targets.
    A rotation mixes x and y, so a point missing only one coordinate comes out missing both (the
    data never has such points: a keypoint's x and y are missing together)."""
    n = len(keypoints_px)
    centre = _centre(size)
    points = np.asarray(keypoints_px, np.float64).reshape(n, -1, 2) - centre     # (n, k, 2)
    moved = np.einsum("nij,nkj->nki", linear, points) + shifts[:, None] + centre
    moved = moved.reshape(n, -1).astype(np.float32)
    moved[flips] = moved[flips][:, flip_permutation(columns)]
    return moved


# ---------------------------------------------------------------------------------------------
# Pixel-value changes.

def _photometric(images, rng, config):
    n = len(images)
    out = images
    if config.brightness or config.contrast:
        contrast = (1 + rng.uniform(-1, 1, n) * config.contrast).astype(np.float32)
        brightness = (rng.uniform(-1, 1, n) * config.brightness).astype(np.float32)
        mean = images.mean(axis=(1, 2, 3), keepdims=True)
        out = (images - mean) * contrast[:, None, None, None] + mean + brightness[:, None, None, None]
    if config.noise:
        # Draw only the pixels that change (1% of them: 100x fewer draws than one per pixel), half
        # of them pepper (0) and half salt (1); a pixel drawn twice keeps its last value.
        out = out.copy() if out is images else out
        flat = out.reshape(-1)
        changed = rng.integers(0, flat.size, rng.binomial(flat.size, config.noise))
        flat[changed] = rng.random(len(changed)) < 0.5
    if config.erase:
        inside = _random_rectangles(n, images.shape[1:3], rng)[..., None] & (rng.random(n) < config.erase)[:, None, None, None]
        out = np.where(inside, rng.random(images.shape, dtype=np.float32), out)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _random_rectangles(n, size, rng, area=(0.02, 0.2), aspect=(0.3, 3.3)):
    """(n, h, w) masks, each one rectangle of a random area fraction and aspect ratio (random erasing,
    Zhong et al. 2020), clipped to the image."""
    height, width = size
    areas = rng.uniform(*area, n) * height * width
    ratios = np.exp(rng.uniform(*np.log(aspect), n))
    heights, widths = np.sqrt(areas * ratios), np.sqrt(areas / ratios)
    tops, lefts = rng.uniform(0, 1, n) * (height - heights), rng.uniform(0, 1, n) * (width - widths)
    ys, xs = np.arange(height)[None, :, None], np.arange(width)[None, None, :]
    return ((ys >= tops[:, None, None]) & (ys < (tops + heights)[:, None, None])
            & (xs >= lefts[:, None, None]) & (xs < (lefts + widths)[:, None, None]))


# ---------------------------------------------------------------------------------------------
# The two entry points.

def _unit_contiguous(images):
    """float32 in [0, 1] (bytes divided by 255), in C order: the noise writes through a flat view."""
    return np.ascontiguousarray(to_unit(np.asarray(images)))


def augment_keypoint_batch(images, keypoints_px, rng, config=AugmentConfig(),
                           columns=KEYPOINT_COLUMNS):
    """(n, h, w, c) images and (n, 2k) pixel keypoints -> both augmented with the same maps."""
    images = _unit_contiguous(images)
    keypoints = np.array(keypoints_px, np.float32)
    if config.geometric:
        linear, shifts, flips = _random_affines(len(images), images.shape[1:3], rng, config)
        images = warp_images(images, linear, shifts)
        keypoints = move_keypoints(keypoints, linear, shifts, images.shape[1:3], flips, columns)
    return _photometric(images, rng, config), keypoints


def augment_image_batch(images, rng, config=AugmentConfig()):
    """(n, h, w, c) images -> augmented images (expressions: labels do not move)."""
    images = _unit_contiguous(images)
    if config.geometric:
        linear, shifts, _ = _random_affines(len(images), images.shape[1:3], rng, config)
        images = warp_images(images, linear, shifts)
    return _photometric(images, rng, config)


def keypoint_augmenter(config=AugmentConfig(), to_pixels=None, to_targets=None,
                       columns=KEYPOINT_COLUMNS):
    """An `augment(x, y, rng)` for Batches. `to_pixels` / `to_targets` map scaled targets to
    pixels and back (e.g. a fitted scaler's inverse_transform / transform)."""
    def augment(x, y, rng):
        pixels = to_pixels(y) if to_pixels else y
        x, pixels = augment_keypoint_batch(x, pixels, rng, config, columns)
        return x, np.asarray(to_targets(pixels) if to_targets else pixels, np.float32)
    return augment


def image_augmenter(config=AugmentConfig()):
    """An `augment(x, y, rng)` for Batches of expression images."""
    return lambda x, y, rng: (augment_image_batch(x, rng, config), y)


# ---------------------------------------------------------------------------------------------
# On the device (--augment-on device): the same changes as Keras preprocessing layers in front of the
# model, so a GPU augments its own batches instead of waiting for the CPU's threads. They act only in
# training (predictions pass through unchanged) and save with the model. Differences from the numpy
# path: flip, rotation, shift and zoom resample one after another instead of in one warp, the erased
# rectangle is filled with Gaussian noise, and there is no salt-and-pepper noise. Expression images
# only: keypoint targets must move with their image.

def device_layers(config, seed=0):
    """Keras layers for `config`'s augmentation of (n, h, w, c) images in [0, 1], each drawing from
    its own stream of `seed`, so a run is reproducible."""
    layers = keras.layers
    edge = {"fill_mode": "nearest"}   # repeat the edge, as the numpy warp does
    unit = {"value_range": (0.0, 1.0)}
    chosen = [
        (config.flip, layers.RandomFlip, ("horizontal",), {}),
        (config.max_rotation_deg, layers.RandomRotation, (config.max_rotation_deg / 360,), edge),
        (config.max_shift, layers.RandomTranslation, (config.max_shift, config.max_shift), edge),
        (config.zoom, layers.RandomZoom, (config.zoom,), edge),
        (config.contrast, layers.RandomContrast, (config.contrast,), unit),
        (config.brightness, layers.RandomBrightness, (config.brightness,), unit),
        (config.erase, layers.RandomErasing, ((config.erase, config.erase),), {"scale": (0.02, 0.2), **unit}),
    ]
    wanted = [(kind, args, options) for strength, kind, args, options in chosen if strength]
    return [kind(*args, **options, seed=seed + offset) for offset, (kind, args, options) in enumerate(wanted)]


def on_device(model, config, seed=0):
    """`model` with `config`'s augmentation in front of it, run by the device in training only."""
    inputs = keras.Input(model.input_shape[1:], name="image")
    x = inputs
    for layer in device_layers(config, seed):
        x = layer(x)
    return keras.Model(inputs, model(x), name=model.name)


# ---------------------------------------------------------------------------------------------
# Feeding model.fit.

# Stream tags keep shuffling and augmentation draws apart. (A SeedSequence ignores trailing zeros,
# so [seed, epoch] and [seed, epoch, 0] would be the same stream.)
_SHUFFLE, _AUGMENT = 1, 2


class Batches(keras.utils.PyDataset):
    """(x, y) or (x, y, sample_weight) numpy batches for `model.fit`, reshuffled every epoch.

    Every batch holds exactly `batch_size` rows: the last one of an epoch is filled up from the
    start of the same epoch's order (and a set smaller than a batch repeats). So every training step
    has one shape: the step function is traced once, BatchNorm never sees a batch of one, and no
    kernel meets an odd leftover size. An epoch still shows every row at least once.

    uint8 images (as the scale stage stores them) become float32 in [0, 1] batch by batch, so the
    training set stays in memory as bytes. `augment(x, y, rng) -> (x, y)` is then applied to each
    batch when given (training only). The order and every random draw depend only on (seed, epoch,
    batch index), so a run is reproducible, also with worker threads. Extra keyword arguments
    (workers, ...) go to keras.utils.PyDataset.

    `shard=(k, n)` gives worker k of n in a multiworker run its share of every global batch: the k-th
    of n equal blocks (`batch_size` stays the global batch). Only that block is augmented, with
    draws of its own.
    """

    def __init__(self, x, y=None, batch_size=64, augment=None, shuffle=True, seed=0,
                 sample_weight=None, shard=(0, 1), **kwargs):
        super().__init__(**kwargs)
        if not len(x):
            raise ValueError("no rows to make batches of")
        self.x, self.y, self.sample_weight = x, y, sample_weight
        self.batch_size = int(batch_size)
        self.augment, self.shuffle, self.seed = augment, shuffle, int(seed)
        self.shard = tuple(shard)
        if self.batch_size % self.shard[1]:
            raise ValueError(f"a batch of {self.batch_size} does not split into {self.shard[1]} shards")
        self.epoch = 0
        self._order = self._order_for(0)

    def _order_for(self, epoch):
        if not self.shuffle:
            return np.arange(len(self.x))
        return np.random.default_rng([self.seed, epoch, _SHUFFLE]).permutation(len(self.x))

    def set_epoch(self, epoch):
        """Continue at `epoch` (a resumed run): the same order and draws as an unbroken run."""
        self.epoch, self._order = epoch, self._order_for(epoch)

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index):
        positions = (index * self.batch_size + np.arange(self.batch_size)) % len(self.x)
        rows = self._order[positions]
        part, parts = self.shard
        if parts > 1:
            rows = rows.reshape(parts, -1)[part]
        x = to_unit(self.x[rows])   # uint8 images become float32 here, one batch at a time
        y = None if self.y is None else self.y[rows]
        if self.augment is not None:
            key = [self.seed, self.epoch, _AUGMENT, index] + ([part] if parts > 1 else [])
            rng = np.random.default_rng(key)
            x, y = self.augment(x, y, rng)
        if y is None:
            return x
        if self.sample_weight is None:
            return x, y
        return x, y, self.sample_weight[rows]

    def on_epoch_end(self):
        self.epoch += 1
        self._order = self._order_for(self.epoch)
