import numpy as np
import pytest
from keras import ops

from pipeline.models.losses import masked_mse, masked_rmse


def test_masked_mse_ignores_missing_targets():
    y_true = np.array([[1.0, np.nan, 3.0], [np.nan, np.nan, 0.0]], np.float32)
    y_pred = np.array([[2.0, 100.0, 3.0], [50.0, -7.0, 2.0]], np.float32)
    expected = ((2 - 1) ** 2 + 0 + (2 - 0) ** 2) / 3
    assert float(ops.convert_to_numpy(masked_mse(y_true, y_pred))) == pytest.approx(expected)
    assert float(ops.convert_to_numpy(masked_rmse(y_true, y_pred))) == pytest.approx(np.sqrt(expected))


def test_all_missing_batch_gives_zero_not_nan():
    y_true = np.full((2, 3), np.nan, np.float32)
    loss = float(ops.convert_to_numpy(masked_mse(y_true, np.ones((2, 3), np.float32))))
    assert loss == 0.0


def test_gradient_is_finite_with_missing_targets():
    import tensorflow as tf

    y_true = tf.constant([[1.0, np.nan], [np.nan, 2.0]])
    y_pred = tf.Variable([[0.0, 5.0], [5.0, 0.0]])
    with tf.GradientTape() as tape:
        loss = masked_mse(y_true, y_pred)
    gradient = tape.gradient(loss, y_pred).numpy()
    assert np.isfinite(gradient).all()
    np.testing.assert_allclose(gradient, [[-1.0, 0.0], [0.0, -2.0]])   # d/dp (p - t)^2 / 2

