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
