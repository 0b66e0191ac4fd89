"""Adam and AdamW through TensorFlow's fused kernel, Keras's own optimizers on every other backend.

Keras 3 updates each variable in about eight separate operations (two moment updates, the square,
the square root, the division, three variable writes), each a pass over the variable and a node for
TensorFlow's executor to schedule: for heatmap_keypoints, whose 52 variables are small, about 255
operations a step (TensorFlow's profiler). TensorFlow's ResourceApplyAdam does the same arithmetic
in one:

    m += (g - m)(1 - beta_1);  v += (g^2 - v)(1 - beta_2)
    w -= lr sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)

(Keras's formula, epsilon outside the square root); after six steps the weights agree with Keras's
Adam to float32 rounding (a few units in the last place; tests/models/test_adam.py). On 2 cores
(Intel Xeon with AMX, mixed bfloat16, batch 32, median of 4 interleaved epochs from memory)
heatmap_keypoints trained at 716 against 664 images/s. Weight decay (AdamW's, or Adam's
`weight_decay`) is applied by Keras before the update, as for its own classes. AMSGrad, sparse
gradients and distribution strategies take Keras's path.
"""
import keras
from keras import ops


class _FusedAdamUpdate:
    def update_step(self, gradient, variable, learning_rate):
        if keras.config.backend() != "tensorflow" or self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf  # the fused kernel is the point; other backends returned above

        if isinstance(gradient, tf.IndexedSlices) or tf.distribute.has_strategy():
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = ops.cast(self.iterations + 1, dtype)
        index = self._get_variable_index(variable)
        beta_1, beta_2 = ops.cast(self.beta_1, dtype), ops.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].handle, v=self._velocities[index].handle,
            beta1_power=ops.power(beta_1, step), beta2_power=ops.power(beta_2, step),
            lr=ops.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
            epsilon=ops.cast(self.epsilon, dtype), grad=ops.cast(gradient, dtype))


@keras.saving.register_keras_serializable(package="faces")
class Adam(_FusedAdamUpdate, keras.optimizers.Adam):
    """keras.optimizers.Adam, fused on the TensorFlow backend."""


@keras.saving.register_keras_serializable(package="faces")
class AdamW(_FusedAdamUpdate, keras.optimizers.AdamW):
    """keras.optimizers.AdamW, fused on the TensorFlow backend."""
