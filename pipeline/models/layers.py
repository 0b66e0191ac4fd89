"""Custom layers the model zoo shares. Saved models refer to them by name, so whatever loads a
model.keras imports this module first (predict and resume do)."""
import keras
import numpy as np
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


def strided_pointwise(x, filters, strides, name, **conv_options):
    """A 1x1 convolution with `strides` ("same" padding), as keeping every strides-th pixel (a 1x1
    max-pool) and then a stride-1 1x1 convolution: the same function with the same weights.

    Why not Conv2D(filters, 1, strides=2)? oneDNN (TensorFlow's CPU kernels) computes that layer's
    kernel gradient wrongly, writing past its workspace, when the input has fewer channels than its
    block: 8 with AVX2, 16 with AVX-512 (oneDNN issue #6035). On AVX-512 CPUs mini_xception's first
    shortcut (8 channels in) killed training with SIGSEGV or "double free", depending on the batch
    size; on AVX2 a 4-channel input gets gradients off by 100%. `python -m pipeline.bench onednn`
    shows it. The stride-1 convolution takes a different, correct kernel.
    """
    x = layers.MaxPooling2D(1, strides=strides, padding="same", name=f"{name}_sample")(x)
    return layers.Conv2D(filters, 1, name=name, **conv_options)(x)


@keras.saving.register_keras_serializable(package="faces")
class SpatialSoftArgmax(layers.Layer):
    """(n, h, w, k) heatmap logits -> (n, 2k) expected positions (x1, y1, x2, y2, ...).

    Each map goes through a softmax over its h*w cells, and the position is the probability-
    weighted mean of the cell centres (Nibali et al. 2018, DSNT; Sun et al. 2018, integral
    regression), so a coarse map still gives sub-cell positions and the loss on coordinates trains
    it end to end. Positions come in the pipeline's "image" keypoint scaling: pixel x of an image
    `image_size` wide maps to x / (image_size / 2) - 1, pixel centres at integers.
    """

    def __init__(self, image_size, **kwargs):
        super().__init__(**kwargs)
        self.image_size = int(image_size)

    def call(self, logits):
        height, width, maps = logits.shape[1], logits.shape[2], logits.shape[3]
        cell = self.image_size / width   # pixels per cell
        centres_x = ((ops.arange(width, dtype="float32") + 0.5) * cell - 0.5) / (self.image_size / 2) - 1
        centres_y = ((ops.arange(height, dtype="float32") + 0.5) * cell - 0.5) / (self.image_size / 2) - 1
        weights = ops.softmax(ops.reshape(logits, (-1, height * width, maps)), axis=1)
        weights = ops.reshape(weights, (-1, height, width, maps))
        x = ops.sum(ops.sum(weights, axis=1) * centres_x[None, :, None], axis=1)   # (n, maps)
        y = ops.sum(ops.sum(weights, axis=2) * centres_y[None, :, None], axis=1)
        return ops.reshape(ops.stack([x, y], axis=-1), (-1, 2 * maps))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2 * input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size}


@keras.saving.register_keras_serializable(package="faces")
class PerOutputAffine(layers.Layer):
    """y = a * x + b for each output on its own, starting as the identity: lets a head that
    answers in the "image" scaling fit targets scaled from the data's range (--keypoint-range data)."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale")
        self.offset = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="offset")

    def call(self, x):
        return x * self.scale + self.offset


@keras.saving.register_keras_serializable(package="faces")
class TakeColumns(layers.Layer):
    """[a, b] (n, k) each -> a with its `columns` taken from b: two keypoint specialists' outputs
    merged by keypoint (training/specialists.py), exactly, with no arithmetic on either."""

    def __init__(self, columns, **kwargs):
        super().__init__(**kwargs)
        self.columns = [int(c) for c in columns]

    def call(self, inputs):
        base, taken = inputs
        chosen = np.isin(np.arange(base.shape[-1]), self.columns)[None, :]   # fixed when the model is built
        return ops.where(chosen, ops.cast(taken, base.dtype), base)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "columns": self.columns}
