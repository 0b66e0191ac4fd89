"""Batch normalization through TensorFlow's fused kernel, the same layer on every other backend.

Keras 3 normalizes in about ten separate operations (mean, squared difference, subtract, multiply,
tile, their gradients), each a pass over the activations. On 2 CPU cores they took longer than the
convolutions' backward pass: compact_vgg trained at 820 images/s with them, 1,106 with no
normalization at all (float32), 942 and 1,627 in mixed bfloat16 (AMD EPYC with AVX512_BF16,
batch 64). TensorFlow's FusedBatchNormV3 (oneDNN's batch_normalization on the CPU, in bfloat16
too) does it in one pass forward and one backward.

The arithmetic is Keras's own: the batch's biased variance normalizes, and the moving mean and
variance follow the same update (FusedBatchNormV3 reports the unbiased variance, corrected back
here). The JAX backend, a mask, renorm or a non-4D input take Keras's own path.
"""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="faces")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """keras.layers.BatchNormalization (channels last), fused on the TensorFlow backend."""

    def call(self, inputs, training=None, mask=None):
        if (keras.config.backend() != "tensorflow" or mask is not None or self.renorm or self.synchronized
                or len(inputs.shape) != 4 or self.axis not in (-1, 3)):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf  # the fused kernel is the point; other backends returned above

        channels = inputs.shape[-1]
        gamma = ops.convert_to_tensor(self.gamma) if self.scale else tf.ones((channels,), "float32")
        beta = ops.convert_to_tensor(self.beta) if self.center else tf.zeros((channels,), "float32")
        if training and self.trainable:
            outputs, mean, unbiased = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, epsilon=self.epsilon, data_format="NHWC", is_training=True)
            count = tf.cast(tf.size(inputs) // channels, "float32")
            variance = unbiased * (count - 1) / count
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        else:
            outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, mean=ops.convert_to_tensor(self.moving_mean),
                variance=ops.convert_to_tensor(self.moving_variance), epsilon=self.epsilon, data_format="NHWC",
                is_training=False)
        return ops.cast(outputs, self.compute_dtype)
