"""Mirroring a face left to right: its image, and its keypoints with the left/right names swapped.

Training augmentation and test-time augmentation both mirror with these. Coordinates are pixel
centres: pixel column i sits at x = i, so the mirror sends x to width - 1 - x.
"""
import numpy as np

from pipeline.core.competitions import FLIP_PAIRS, KEYPOINT_COLUMNS


def flip_images(images):
    """Mirror (n, h, w, c) images left to right."""
    return np.ascontiguousarray(images[:, :, ::-1])


def flip_permutation(columns=KEYPOINT_COLUMNS):
    """Index array that swaps each left_* column with its right_* twin within `columns`."""
    names = dict(
        pair for a, b in FLIP_PAIRS
        for pair in ((KEYPOINT_COLUMNS[a], KEYPOINT_COLUMNS[b]), (KEYPOINT_COLUMNS[b], KEYPOINT_COLUMNS[a])))
    try:
        return np.array([columns.index(names.get(column, column)) for column in columns])
    except ValueError:
        raise ValueError("keypoint columns must hold both members of every left/right pair") from None


def x_columns(columns):
    return np.array([column.endswith("_x") for column in columns])


def flip_keypoints(keypoints_px, width, columns=KEYPOINT_COLUMNS):
    """Keypoints of the mirrored image: x -> width - 1 - x, then left and right columns swapped
    (the subject's left eye of the mirrored face is the mirror image of its right eye)."""
    flipped = np.array(keypoints_px, dtype=np.float32)[:, flip_permutation(columns)]
    x = x_columns(columns)
    flipped[:, x] = (width - 1) - flipped[:, x]
    return flipped
