import json

import numpy as np
import pytest

from pipeline import scale


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
