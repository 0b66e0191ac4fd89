"""Keypoint losses that train on the targets a row has: NaN marks a missing keypoint.

Most real training rows carry only 4 of the 15 keypoints; masking lets those rows teach the model
the keypoints they do have instead of being dropped (the reference's dropna) or imputed.
"""
import keras
from keras import ops


def _masked_squared_error(y_true, y_pred):
    present = ops.logical_not(ops.isnan(y_true))
    error = ops.where(present, y_pred - ops.where(present, y_true, 0.0), 0.0)
    count = ops.maximum(ops.sum(ops.cast(present, y_pred.dtype)), 1.0)
    return ops.sum(ops.square(error)) / count


@keras.saving.register_keras_serializable(package="faces")
def masked_mse(y_true, y_pred):
    """Mean squared error over the present (non-NaN) targets of the batch."""
    return _masked_squared_error(y_true, y_pred)


@keras.saving.register_keras_serializable(package="faces")
def masked_rmse(y_true, y_pred):
    """Root of masked_mse: the reference's RMSE loss, in scaled units."""
    return ops.sqrt(_masked_squared_error(y_true, y_pred) + 1e-12)


LOSSES = {"mse": masked_mse, "rmse": masked_rmse}
