"""Conv2D whose kernel gradient on the smallest bfloat16 maps is one matrix product (TensorFlow).

On a CPU, oneDNN's bfloat16 kernel for a convolution's weight gradient runs at a fraction of its
forward rate when the map is tiny: in heatmap_keypoints (batch 32, Intel Xeon with AMX, 2 cores) the
two 3x3x256 convolutions of the last encoder stage took 2.6 and 3.4 ms for it against 1.2 for the
forward pass, 65 and 99 GFLOP/s. There the gradient is computed as what it is: the input's k x k
patches (one row of k*k*c_in per output position) transposed, times the output's gradient (one row
of c_out per position), a matrix product the bfloat16 units run near their rate: 1.2 and 1.7 ms.
On 6x6 maps and larger oneDNN's own kernel was the faster (3x3x128 at 6x6: 1.8 against 2.5 ms), as
it was in float32 at every size, so those keep it. The forward pass and the input's gradient are
TensorFlow's own kernels throughout; on other backends the layer is keras.layers.Conv2D.
"""
import keras

# Output positions (h * w) up to which the kernel gradient is a matrix product: 3x3 maps.
MAX_POSITIONS = 9


@keras.saving.register_keras_serializable(package="faces")
class Conv2D(keras.layers.Conv2D):
    """keras.layers.Conv2D, with the matrix-product kernel gradient on <= 3x3 bfloat16 outputs."""

    def convolution_op(self, inputs, kernel):
        height, width = self.compute_output_shape(inputs.shape)[1:3]
        if (keras.config.backend() != "tensorflow" or self.compute_dtype != "bfloat16"
                or self.data_format != "channels_last" or tuple(self.dilation_rate) != (1, 1) or self.groups != 1
                or height is None or width is None or height * width > MAX_POSITIONS):
            return super().convolution_op(inputs, kernel)
        return _conv_with_patch_gradient(inputs, kernel, tuple(self.strides), self.padding.upper())


def _conv_with_patch_gradient(inputs, kernel, strides, padding):
    import tensorflow as tf  # a custom gradient of TensorFlow's kernels is the point (only called under it)

    strides = [1, *strides, 1]

    @tf.custom_gradient
    def conv(x, w):
        def gradient(dy):
            dx = tf.compat.v1.nn.conv2d_backprop_input(tf.shape(x), w, dy, strides, padding)
            kh, kw, c_in, c_out = w.shape
            # one row per output position, laid out (kh, kw, c_in) as the kernel is
            patches = tf.image.extract_patches(x, [1, kh, kw, 1], strides, [1, 1, 1, 1], padding)
            dw = tf.matmul(tf.reshape(patches, (-1, kh * kw * c_in)), tf.reshape(dy, (-1, c_out)), transpose_a=True)
            return dx, tf.reshape(dw, w.shape)
        return tf.nn.conv2d(x, w, strides, padding), gradient

    return conv(inputs, kernel)
