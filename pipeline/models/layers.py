"""Custom layers the model zoo shares. Saved models refer to them by name, so whatever loads a
model.keras imports this module first (predict and resume do)."""
import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="faces")
class CoordinateChannels(layers.Layer):
    """(n, h, w, c) -> (n, h, w, c + 2): appends each pixel's x and y, both in [-1, 1] (CoordConv,
    Liu et al. 2018). Convolutions then see where they are, so a network that regresses positions
    does not have to infer them from the zero padding at the borders."""

    def call(self, images):
        height, width = images.shape[1], images.shape[2]
        ys, xs = ops.meshgrid(ops.linspace(-1.0, 1.0, height), ops.linspace(-1.0, 1.0, width), indexing="ij")
        grid = ops.cast(ops.stack([xs, ys], axis=-1), images.dtype)[None]          # (1, h, w, 2)
        grid = ops.broadcast_to(grid, (ops.shape(images)[0], height, width, 2))
        return ops.concatenate([images, grid], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 2)
