import json

import numpy as np
import pytest

from pipeline.data import scale
from pipeline.core.competitions import EXPRESSIONS
from pipeline.core.fileio import load_arrays, save_arrays
from pipeline.core import layout


@pytest.mark.parametrize("keypoint_range", ["image", "data"])
def test_scaling_round_trip_keeps_nan(keypoint_range):
    rng = np.random.default_rng(0)
    keypoints = rng.uniform(10, 86, size=(50, 30))
    keypoints[rng.random(keypoints.shape) < 0.3] = np.nan
    scaling = scale.fit_keypoint_scaling(keypoints, keypoint_range)
    scaled = scaling.transform(keypoints)
    assert np.nanmin(scaled) >= -1 - 1e-6 and np.nanmax(scaled) <= 1 + 1e-6
    np.testing.assert_array_equal(np.isnan(scaled), np.isnan(keypoints))
    np.testing.assert_allclose(scaling.inverse_transform(scaled), keypoints, rtol=1e-5)


def test_image_range_is_the_reference_mapping():
    scaling = scale.fit_keypoint_scaling(np.zeros((1, 30)), "image")
    np.testing.assert_allclose(scaling.transform(np.full((1, 30), 72.0)), (72 - 48) / 48)


def test_data_range_maps_each_column_min_max_to_minus_one_one():
    keypoints = np.array([[10.0] * 30, [50.0] * 30, [30.0] * 30])
    keypoints[:, 1] = 40.0   # a column with one value keeps the image's bounds
    scaled = scale.fit_keypoint_scaling(keypoints, "data").transform(keypoints)
    np.testing.assert_allclose(scaled[:, 0], [-1, 1, 0])
    np.testing.assert_allclose(scaled[:, 1], (40 - 48) / 48)


def test_scaling_is_plain_json_that_inverts_predictions(tmp_path):
    keypoints = np.random.default_rng(1).uniform(0, 96, size=(20, 30))
    scaling = scale.fit_keypoint_scaling(keypoints, "data")
    (tmp_path / "scaling.json").write_text(json.dumps(scaling.to_json()))
    loaded = scale.load_scaling(tmp_path / "scaling.json")
    assert loaded == scaling
    np.testing.assert_allclose(loaded.inverse_transform(scaling.transform(keypoints)), keypoints, rtol=1e-5)


def test_pixels_become_unit_float32():
    images = np.array([[[0, 255], [51, 102]]], np.uint8)
    unit = scale.pixels_to_unit(images)
    assert unit.shape == (1, 2, 2, 1) and unit.dtype == np.float32
    np.testing.assert_allclose(unit[0, :, :, 0], [[0, 1], [0.2, 0.4]])


def test_to_unit_divides_bytes_and_passes_float_images_through():
    pixels = np.array([[[[0], [255]], [[51], [102]]]], np.uint8)
    unit = scale.to_unit(pixels)
    assert unit.dtype == np.float32 and unit.shape == pixels.shape
    np.testing.assert_array_equal(unit, pixels.astype(np.float32) / np.float32(255))
    assert scale.to_unit(unit) is unit   # arrays cached as float32 by an earlier version still work


def test_the_stage_stores_images_as_bytes_in_the_models_layout(tmp_path):
    rng = np.random.default_rng(0)
    train, test = (rng.integers(0, 256, (n, 48, 48), dtype=np.uint8) for n in (5, 3))
    labels = rng.integers(0, 7, 5)
    save_arrays(tmp_path / "clean.npz", train_images=train, test_images=test, train_labels=labels,
                train_distribution=np.eye(7, dtype=np.float32)[labels], test_labels=np.zeros(3, int),
                test_distribution=np.zeros((3, 7), np.float32), test_usage=np.array(["PublicTest"] * 3))
    (tmp_path / "meta.json").write_text("{}")
    (tmp_path / "out").mkdir()
    summary = scale.run(EXPRESSIONS, tmp_path, tmp_path / "out")
    arrays = load_arrays(tmp_path / "out" / layout.ARRAYS)
    assert arrays["train_x"].dtype == np.uint8 and arrays["train_x"].shape == (5, 48, 48, 1)
    np.testing.assert_array_equal(arrays["train_x"][..., 0], train)
    np.testing.assert_array_equal(arrays["test_x"][..., 0], test)
    assert summary["pixel_range"] == [int(train.min()), int(train.max())]
