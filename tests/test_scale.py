import numpy as np
import pytest

from pipeline import scale


@pytest.mark.parametrize("keypoint_range", ["image", "data"])
def test_scaler_round_trip_keeps_nan(keypoint_range):
    rng = np.random.default_rng(0)
    keypoints = rng.uniform(10, 86, size=(50, 30))
    keypoints[rng.random(keypoints.shape) < 0.3] = np.nan
    scaler = scale.fit_keypoint_scaler(keypoints, keypoint_range)
    scaled = scaler.transform(keypoints)
    assert np.nanmin(scaled) >= -1 - 1e-9 and np.nanmax(scaled) <= 1 + 1e-9
    np.testing.assert_array_equal(np.isnan(scaled), np.isnan(keypoints))
    np.testing.assert_allclose(scaler.inverse_transform(scaled), keypoints)


def test_image_range_is_the_reference_mapping():
    scaler = scale.fit_keypoint_scaler(np.zeros((1, 30)), "image")
    np.testing.assert_allclose(scaler.transform(np.full((1, 30), 72.0)), (72 - 48) / 48)


def test_saved_scaler_inverts_predictions(tmp_path):
    keypoints = np.random.default_rng(1).uniform(0, 96, size=(20, 30))
    scaler = scale.fit_keypoint_scaler(keypoints, "data")
    scale.save_scaler(scaler, tmp_path / "scaler.joblib")
    loaded = scale.load_scaler(tmp_path / "scaler.joblib")
    np.testing.assert_allclose(loaded.inverse_transform(scaler.transform(keypoints)), keypoints)


def test_pixels_become_unit_float32():
    images = np.array([[[0, 255], [51, 102]]], np.uint8)
    unit = scale.pixels_to_unit(images)
    assert unit.shape == (1, 2, 2, 1) and unit.dtype == np.float32
    np.testing.assert_allclose(unit[0, :, :, 0], [[0, 1], [0.2, 0.4]])
