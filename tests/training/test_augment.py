"""Augmentation keeps images and keypoints in register, mirrors left/right, and is reproducible."""
import numpy as np
import pytest

from pipeline.core.competitions import KEYPOINT_COLUMNS, PARTIAL_KEYPOINTS
from pipeline.data.mirror import flip_images, flip_keypoints, flip_permutation
from pipeline.training.augment import (AugmentConfig, Batches, augment_image_batch, augment_keypoint_batch,
                                       keypoint_augmenter, warp_images)

SIZE = 96
LEFT_EYE = KEYPOINT_COLUMNS.index("left_eye_center_x")
RIGHT_EYE = KEYPOINT_COLUMNS.index("right_eye_center_x")
NOSE = KEYPOINT_COLUMNS.index("nose_tip_x")


def draw_dots(dots, size=SIZE, sigma=1.2):
    """One (size, size, 1) image with a Gaussian dot of the given brightness at each (x, y)."""
    ys, xs = np.mgrid[0:size, 0:size]
    image = np.zeros((size, size), np.float32)
    for (x, y), brightness in dots:
        image += brightness * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma ** 2))
    return image[..., None]


def keypoints_with(**points):
    """(30,) pixel keypoints, NaN except the named points, e.g. nose_tip=(48, 60)."""
    row = np.full(len(KEYPOINT_COLUMNS), np.nan, np.float32)
    for name, (x, y) in points.items():
        row[KEYPOINT_COLUMNS.index(f"{name}_x")] = x
        row[KEYPOINT_COLUMNS.index(f"{name}_y")] = y
    return row


def at(image, x, y):
    return image[int(round(y)), int(round(x)), 0]


def centroid(image, x, y, radius=5):
    """Brightness-weighted centre of the dot near (x, y)."""
    y0, x0 = int(round(y)), int(round(x))
    patch = image[y0 - radius:y0 + radius + 1, x0 - radius:x0 + radius + 1, 0]
    ys, xs = np.mgrid[y0 - radius:y0 + radius + 1, x0 - radius:x0 + radius + 1]
    return (patch * xs).sum() / patch.sum(), (patch * ys).sum() / patch.sum()


def eyes_face():
    """The subject's left eye is on the image's right. Left eye bright, right eye dim."""
    image = draw_dots([((66, 37), 1.0), ((30, 37), 0.5)])
    return image[None], keypoints_with(left_eye_center=(66, 37), right_eye_center=(30, 37))[None]


def test_flip_mirrors_the_image_and_swaps_left_and_right():
    images, keypoints = eyes_face()
    flipped, moved = flip_images(images), flip_keypoints(keypoints, SIZE)

    # The new left eye is the mirrored right eye: x' = 95 - 30, and the dim dot is there.
    assert moved[0, LEFT_EYE:LEFT_EYE + 2] == pytest.approx([SIZE - 1 - 30, 37])
    assert moved[0, RIGHT_EYE:RIGHT_EYE + 2] == pytest.approx([SIZE - 1 - 66, 37])
    assert at(flipped[0], *moved[0, LEFT_EYE:LEFT_EYE + 2]) == pytest.approx(0.5, abs=0.01)
    assert at(flipped[0], *moved[0, RIGHT_EYE:RIGHT_EYE + 2]) == pytest.approx(1.0, abs=0.01)
    assert np.array_equal(np.isnan(moved), np.isnan(keypoints))
    assert np.array_equal(flip_keypoints(moved, SIZE), keypoints, equal_nan=True)


def test_random_flips_keep_each_eye_under_its_dot():
    images, keypoints = eyes_face()
    # An off-centre nose tells which rows were mirrored: it is the only point that does not swap.
    images = np.repeat(images + draw_dots([((40, 60), 0.8)]), 16, 0)
    keypoints = np.repeat(keypoints, 16, 0)
    keypoints[:, NOSE:NOSE + 2] = 40, 60
    config = AugmentConfig(**{**AugmentConfig.off().__dict__, "flip": True})
    out, moved = augment_keypoint_batch(images, keypoints, np.random.default_rng(1), config)

    mirrored = moved[:, NOSE] > SIZE / 2
    assert 0 < mirrored.sum() < len(out)   # some of each, so both paths are checked
    for image, row, flipped in zip(out, moved, mirrored):
        assert at(image, *row[LEFT_EYE:LEFT_EYE + 2]) == pytest.approx(0.5 if flipped else 1.0, abs=0.02)
        assert at(image, *row[RIGHT_EYE:RIGHT_EYE + 2]) == pytest.approx(1.0 if flipped else 0.5, abs=0.02)
        assert at(image, *row[NOSE:NOSE + 2]) == pytest.approx(0.8, abs=0.02)


def test_flip_permutation_works_on_the_partial_columns():
    columns = tuple(f"{name}_{axis}" for name in PARTIAL_KEYPOINTS for axis in "xy")
    assert [columns[i] for i in flip_permutation(columns)][:4] == [
        "right_eye_center_x", "right_eye_center_y", "left_eye_center_x", "left_eye_center_y"]
    with pytest.raises(ValueError):
        flip_permutation(("left_eye_center_x", "left_eye_center_y"))


@pytest.mark.parametrize("seed", range(3))
def test_a_dot_stays_under_its_keypoint_through_shift_rotation_and_zoom(seed):
    rng = np.random.default_rng(100 + seed)
    points = rng.uniform(30, 66, (8, 2))
    images = np.stack([draw_dots([(point, 1.0)]) for point in points])
    keypoints = np.stack([keypoints_with(nose_tip=point) for point in points])  # flip-invariant
    config = AugmentConfig(max_shift=0.1, max_rotation_deg=15, zoom=0.15,
                           brightness=0, contrast=0, noise=0)

    out, moved = augment_keypoint_batch(images, keypoints, np.random.default_rng(seed), config)
    for image, row in zip(out, moved):
        assert centroid(image, *row[NOSE:NOSE + 2]) == pytest.approx(row[NOSE:NOSE + 2], abs=1.0)


def test_a_whole_pixel_shift_moves_the_image_and_repeats_the_edge():
    image = np.random.default_rng(0).random((1, 12, 16, 1), dtype=np.float32)
    linear, shifts = np.eye(2)[None], np.array([[3.0, -2.0]])      # 3 right, 2 up
    out = warp_images(image, linear, shifts)[0, ..., 0]
    expected = image[0, ..., 0][np.clip(np.arange(12) + 2, 0, 11)][:, np.clip(np.arange(16) - 3, 0, 15)]
    np.testing.assert_array_equal(out, expected)


def test_rotation_and_zoom_sample_bilinearly_about_the_centre():
    """The values of scipy's bilinear sampling (map_coordinates, order 1, edge repeated), to OpenCV's
    precision."""
    ndimage = pytest.importorskip("scipy.ndimage")
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    image = (0.5 + 0.25 * np.sin(xs / 5) + 0.25 * np.cos(ys / 7))[None, ..., None]
    angle, scale, shift = np.radians(12), 1.1, np.array([4.0, -3.0])
    linear = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    out = warp_images(image, linear[None], shift[None])[0, ..., 0]

    centre = (SIZE - 1) / 2
    source = np.linalg.inv(linear) @ np.stack([xs.ravel() - centre - shift[0], ys.ravel() - centre - shift[1]])
    exact = ndimage.map_coordinates(image[0, ..., 0], [source[1] + centre, source[0] + centre], order=1,
                                    mode="nearest").reshape(SIZE, SIZE)
    # OpenCV's bilinear weights come in steps of 1/32 pixel: each axis may be off by 1/64 of the
    # difference between neighbours. A wrong centre, angle or shift is off by far more.
    steps = np.abs(np.diff(image[0, ..., 0], axis=0)).max() + np.abs(np.diff(image[0, ..., 0], axis=1)).max()
    np.testing.assert_allclose(out, exact, atol=steps / 64 + 1e-6)
    assert np.abs(out - image[0, ..., 0]).max() > 0.3   # it did move


@pytest.mark.parametrize("channels", [1, 3, 6])
def test_every_channel_moves_with_the_same_map(channels):
    """Each channel is warped as it would be alone (OpenCV drops a trailing channel axis of 1, and
    takes several channels in one call): the shape, and every channel, come out right."""
    rng = np.random.default_rng(channels)
    images = rng.random((3, 20, 24, channels), dtype=np.float32)
    angles = np.radians([-20.0, 5.0, 15.0])
    linear = 1.1 * np.stack([[[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]] for a in angles])
    shifts = rng.uniform(-3, 3, (3, 2))
    out = warp_images(images, linear, shifts)
    assert out.shape == images.shape and out.dtype == np.float32
    for channel in range(channels):
        alone = warp_images(np.ascontiguousarray(images[..., channel:channel + 1]), linear, shifts)
        np.testing.assert_allclose(out[..., channel:channel + 1], alone, atol=1e-6)
    assert np.abs(out - images).max() > 0.3


def test_nan_stays_nan_and_values_stay_in_range():
    rng = np.random.default_rng(0)
    images = rng.random((6, SIZE, SIZE, 1), dtype=np.float32)
    keypoints = rng.uniform(20, 76, (6, 30)).astype(np.float32)
    keypoints[rng.random(keypoints.shape) < 0.4] = np.nan
    keypoints[:, 0::2] = np.where(np.isnan(keypoints[:, 1::2]), np.nan, keypoints[:, 0::2])
    keypoints[:, 1::2] = np.where(np.isnan(keypoints[:, 0::2]), np.nan, keypoints[:, 1::2])

    out, moved = augment_keypoint_batch(images, keypoints, np.random.default_rng(0))
    for before, after in zip(keypoints, moved):   # the same points are missing, maybe swapped
        assert (np.array_equal(np.isnan(after), np.isnan(before))
                or np.array_equal(np.isnan(after), np.isnan(before[flip_permutation()])))
    assert out.dtype == np.float32 and out.shape == images.shape
    assert out.min() >= 0 and out.max() <= 1


def test_same_seed_same_batch():
    rng = np.random.default_rng(0)
    images = rng.random((4, 48, 48, 1), dtype=np.float32)
    first = augment_image_batch(images, np.random.default_rng(7))
    again = augment_image_batch(images, np.random.default_rng(7))
    other = augment_image_batch(images, np.random.default_rng(8))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.shape == images.shape


def test_off_changes_nothing():
    rng = np.random.default_rng(0)
    images, keypoints = rng.random((2, SIZE, SIZE, 1), dtype=np.float32), rng.random((2, 30)) * 96
    out, moved = augment_keypoint_batch(images, keypoints, rng, AugmentConfig.off())
    assert np.array_equal(out, images) and np.allclose(moved, keypoints)


def test_salt_and_pepper_touches_about_the_configured_fraction():
    images = np.full((8, 48, 48, 1), 0.5, np.float32)
    config = AugmentConfig(**{**AugmentConfig.off().__dict__, "noise": 0.05})
    out = augment_image_batch(images, np.random.default_rng(0), config)
    assert np.mean(out != 0.5) == pytest.approx(0.05, abs=0.01)
    assert set(np.unique(out)) == {0.0, 0.5, 1.0}


def test_bytes_and_any_memory_order_augment_like_unit_floats():
    pixels = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 1), dtype=np.uint8)
    config = AugmentConfig(noise=0.2)          # brightness and contrast too: noise writes into their output
    expected = augment_image_batch(pixels / np.float32(255), np.random.default_rng(5), config)
    for images in (pixels, np.asfortranarray(pixels / np.float32(255))):
        assert np.array_equal(augment_image_batch(images, np.random.default_rng(5), config), expected)
    out, _ = augment_keypoint_batch(pixels, np.full((4, 30), 40.0), np.random.default_rng(5), config)
    assert out.max() <= 1 and out.mean() < 0.9  # bytes on a 0..255 scale would clip to all ones


def test_keypoint_augmenter_round_trips_through_the_scaler():
    images, keypoints = eyes_face()
    scaled = (keypoints - 48) / 48
    augment = keypoint_augmenter(AugmentConfig.off(), to_pixels=lambda y: y * 48 + 48,
                                 to_targets=lambda p: (p - 48) / 48)
    _, out = augment(images, scaled, np.random.default_rng(0))
    assert np.allclose(out, scaled, equal_nan=True) and out.dtype == np.float32


def test_batches_reshuffle_each_epoch_reproducibly():
    x = np.arange(10, dtype=np.float32)[:, None]
    y, weights = x * 2, x * 3
    batches = Batches(x, y, batch_size=4, seed=3, sample_weight=weights)
    assert len(batches) == 3

    def epoch(b):
        parts = [b[i] for i in range(len(b))]
        b.on_epoch_end()
        return parts

    first, second = epoch(batches), epoch(batches)
    seen = np.concatenate([bx for bx, _, _ in first])[:, 0]
    assert set(seen) == set(range(10)) and len(seen) == 12   # the last batch filled up to 4
    assert not np.array_equal(seen, np.concatenate([bx for bx, _, _ in second])[:, 0])
    assert all(np.array_equal(by, bx * 2) and np.array_equal(bw, bx * 3) for bx, by, bw in first)

    replay = Batches(x, y, batch_size=4, seed=3, sample_weight=weights)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, epoch(replay)))


@pytest.mark.parametrize("rows, batch_size", [(357, 32), (353, 32), (383, 32), (3, 8), (1, 5)])
def test_every_batch_is_full(rows, batch_size):
    x = np.arange(rows, dtype=np.float32)[:, None]
    batches = Batches(x, x, batch_size=batch_size, seed=1)
    parts = [batches[i][0] for i in range(len(batches))]
    assert {len(part) for part in parts} == {batch_size}
    assert set(np.concatenate(parts)[:, 0]) == set(range(rows))


def test_batches_augment_only_when_asked():
    x, y = np.zeros((6, 48, 48, 1), np.float32), np.arange(6)
    calls = []

    def augment(bx, by, rng):
        calls.append(rng.random())
        return bx + 1, by

    plain = Batches(x, y, batch_size=3, shuffle=False)
    assert np.array_equal(plain[0][0], x[:3]) and np.array_equal(plain[1][1], y[3:])
    augmented = Batches(x, y, batch_size=3, augment=augment, shuffle=False)
    assert np.all(augmented[0][0] == 1)
    augmented[0]
    assert calls[0] == calls[1]   # the same batch of the same epoch draws the same numbers


def test_shards_split_every_global_batch_into_blocks_with_their_own_draws():
    x = np.arange(20, dtype=np.float32)[:, None]
    y, weights = x * 2, x * 3
    whole = Batches(x, y, batch_size=8, seed=3, sample_weight=weights)
    shards = [Batches(x, y, batch_size=8, seed=3, sample_weight=weights, shard=(k, 2)) for k in range(2)]
    assert len(shards[0]) == len(whole) == 3   # the same steps, each worker with half of every batch
    for epoch in range(2):
        for i in range(len(whole)):
            for part, expected in zip(zip(*(shard[i] for shard in shards)), whole[i]):
                np.testing.assert_array_equal(np.concatenate(part), expected)
        for batches in (whole, *shards):
            batches.on_epoch_end()

    draws = []

    def augment(bx, by, rng):
        draws.append(rng.random())
        return bx, by

    for k in range(2):
        Batches(x, y, batch_size=8, augment=augment, shard=(k, 2))[0]
    assert draws[0] != draws[1]   # the two workers do not augment their halves alike
    with pytest.raises(ValueError, match="8 does not split into 3"):
        Batches(x, y, batch_size=8, shard=(0, 3))


def test_batches_turn_uint8_images_into_unit_floats_one_batch_at_a_time():
    pixels = np.random.default_rng(0).integers(0, 256, (10, 4, 4, 1), dtype=np.uint8)
    batches = Batches(pixels, np.arange(10), batch_size=4, shuffle=False)
    x, y = batches[1]
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, pixels[4:8].astype(np.float32) / 255)
    np.testing.assert_array_equal(y, np.arange(4, 8))


def test_device_layers_augment_in_training_only_and_reproducibly():
    keras = pytest.importorskip("keras")
    from pipeline.training.augment import STRENGTHS, device_layers, on_device

    images = np.random.default_rng(0).random((6, 48, 48, 1), dtype=np.float32)
    image = keras.Input((48, 48, 1))
    identity = keras.Model(image, keras.layers.Identity()(image))
    twins = [on_device(identity, STRENGTHS["strong"], seed=4) for _ in range(2)]
    first, again = (np.asarray(model(images, training=True)) for model in twins)
    assert np.array_equal(first, again)                                  # same seed, same draws
    assert np.abs(first - images).mean() > 0.05 and 0 <= first.min() and first.max() <= 1
    assert not np.array_equal(np.asarray(twins[0](images, training=True)), first)   # the stream moves on
    assert np.array_equal(np.asarray(twins[0](images, training=False)), images)     # predictions: untouched

    flips_only = AugmentConfig(**{**AugmentConfig.off().__dict__, "flip": True})
    assert [type(layer).__name__ for layer in device_layers(flips_only)] == ["RandomFlip"]
    flipped = np.asarray(on_device(identity, flips_only, seed=1)(images, training=True))
    for out, original in zip(flipped, images):
        assert np.array_equal(out, original) or np.array_equal(out, original[:, ::-1])
    assert device_layers(AugmentConfig.off()) == []
