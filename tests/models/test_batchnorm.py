"""FusedBatchNormalization: TensorFlow's fused kernel with Keras's own arithmetic, in float32 and bfloat16."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from pipeline.models.batchnorm import FusedBatchNormalization  # noqa: E402


@pytest.fixture
def policy(request):
    keras.config.set_dtype_policy(request.param)
    yield request.param
    keras.config.set_dtype_policy("float32")


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"], indirect=True)
def test_it_normalises_updates_and_differentiates_as_keras_does(policy):
    assert keras.config.backend() == "tensorflow"
    x = tf.constant(np.random.default_rng(0).normal(2, 3, (8, 5, 5, 4)).astype(np.float32))
    plain, fused = keras.layers.BatchNormalization(momentum=0.9), FusedBatchNormalization(momentum=0.9)
    for layer in (plain, fused):
        layer.build(x.shape)
        layer.gamma.assign(np.float32([1, 2, 0.5, 1]))
        layer.beta.assign(np.float32([0, 1, -1, 0.5]))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        outputs = [layer(x, training=True) for layer in (plain, fused)]
        losses = [tf.reduce_sum(tf.cast(y, tf.float32) ** 2) for y in outputs]
    assert outputs[1].dtype == outputs[0].dtype == ("bfloat16" if policy == "mixed_bfloat16" else "float32")
    np.testing.assert_allclose(tf.cast(outputs[1], tf.float32), tf.cast(outputs[0], tf.float32), atol=1e-5)
    # the moving statistics follow the biased batch variance, as Keras's do
    np.testing.assert_allclose(fused.moving_mean.numpy(), plain.moving_mean.numpy(), atol=1e-6)
    np.testing.assert_allclose(fused.moving_variance.numpy(), plain.moving_variance.numpy(), rtol=1e-5)
    for a, b in zip(tape.gradient(losses[0], [x, plain.gamma, plain.beta]),
                    tape.gradient(losses[1], [x, fused.gamma, fused.beta])):
        np.testing.assert_allclose(tf.cast(b, tf.float32), tf.cast(a, tf.float32), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(tf.cast(fused(x, training=False), tf.float32),
                               tf.cast(plain(x, training=False), tf.float32), atol=1e-5)


def test_it_saves_and_loads_as_itself(tmp_path):
    from pipeline.models import load_model

    inputs = keras.Input((6, 6, 3))
    model = keras.Model(inputs, FusedBatchNormalization(name="bn")(inputs))
    model.layers[-1].moving_mean.assign([1.0, 2.0, 3.0])
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras", compile=False)
    assert type(loaded.get_layer("bn")) is FusedBatchNormalization
    np.testing.assert_array_equal(loaded.get_layer("bn").moving_mean.numpy(), [1.0, 2.0, 3.0])
