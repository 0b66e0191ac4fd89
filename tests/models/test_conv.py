"""conv.Conv2D: Keras's convolution, with the kernel gradient on tiny bfloat16 maps as one matrix product.

The kernel gradient is checked against the exact one (float64, from the same bfloat16-rounded input
and kernel), not against Keras's bfloat16 kernel: on a CPU without bfloat16 units (an AMD EPYC Zen 2,
AVX2) TensorFlow's own kernel strayed up to 1.3% of the largest gradient from it, the matrix product
0.5%; on CPUs with bfloat16 units both came within 1% of each other."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from pipeline.models import conv  # noqa: E402


def _outputs_and_gradients(layer_class, size, channels, filters, strides, padding):
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        layer = layer_class(filters, 3, strides=strides, padding=padding, use_bias=False)
    finally:
        keras.config.set_dtype_policy("float32")
    x, kernel = _draws(size, channels, filters, strides)
    x = tf.constant(x)
    layer.build(x.shape)
    layer.kernel.assign(kernel)
    step = tf.function(lambda x: _step(layer, x))
    y, dx, dw = step(x)
    graph = step.get_concrete_function(x).graph
    return (y.numpy(), dx.numpy(), dw.numpy()), {op.type for op in graph.get_operations()}


def _draws(size, channels, filters, strides):
    """The input batch and 3x3 kernel of one case, float32."""
    rng = np.random.default_rng(size * 100 + strides)
    x = rng.normal(size=(4, size, size, channels)).astype(np.float32)
    return x, rng.normal(size=(3, 3, channels, filters)).astype(np.float32) * 0.1


def _exact_kernel_gradient(size, channels, filters, strides, padding):
    """The kernel gradient _outputs_and_gradients computes, in float64 from its bfloat16-rounded input
    and kernel."""
    x, w = (tf.cast(tf.cast(a, tf.bfloat16), tf.float64) for a in _draws(size, channels, filters, strides))
    with tf.GradientTape() as tape:
        tape.watch(w)
        loss = _loss(tf.nn.conv2d(x, w, strides, padding.upper()))
    return tape.gradient(loss, w).numpy()


def _step(layer, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.cast(layer(x), tf.float32)
        loss = _loss(y)
    dx, dw = tape.gradient(loss, [x, layer.kernel])
    return y, dx, dw


def _loss(y):
    """The loss both gradients are taken of: each output channel weighted from -1 to 1, in y's dtype."""
    return tf.reduce_sum(y * tf.linspace(tf.constant(-1.0, y.dtype), 1.0, y.shape[-1]))


@pytest.mark.parametrize("size, strides, padding", [(3, 1, "same"), (6, 2, "same"), (5, 2, "same"), (3, 2, "same"),
                                                    (5, 1, "valid"), (7, 2, "valid")])
def test_small_maps_take_the_matrix_product_gradient_exact_to_bfloat16_precision(size, strides, padding):
    ours, our_ops = _outputs_and_gradients(conv.Conv2D, size, 24, 16, strides, padding)
    theirs, their_ops = _outputs_and_gradients(keras.layers.Conv2D, size, 24, 16, strides, padding)
    assert "ExtractImagePatches" in our_ops and "ExtractImagePatches" not in their_ops
    np.testing.assert_array_equal(ours[0], theirs[0])          # the forward pass is TensorFlow's own
    np.testing.assert_allclose(ours[1], theirs[1], rtol=0.02, atol=0.02)   # bfloat16 rounding, both ways
    exact = _exact_kernel_gradient(size, 24, 16, strides, padding)
    scale = np.abs(exact).max()
    np.testing.assert_allclose(ours[2], exact, rtol=0, atol=0.01 * scale)   # bfloat16 rounding
    assert scale > 0.1


def test_larger_maps_and_float32_keep_keras_kernels():
    _, ops = _outputs_and_gradients(conv.Conv2D, 8, 8, 8, 2, "same")   # 4x4 outputs: 16 positions
    assert "ExtractImagePatches" not in ops
    layer = conv.Conv2D(4, 3, padding="same")
    x = tf.constant(np.ones((2, 3, 3, 2), np.float32))
    step = tf.function(lambda x: _step(layer, x))
    step(x)
    assert "ExtractImagePatches" not in {op.type for op in step.get_concrete_function(x).graph.get_operations()}


def test_it_saves_and_loads_by_name(tmp_path):
    from pipeline.models import load_model

    model = keras.Sequential([keras.Input((3, 3, 2)), conv.Conv2D(4, 3, padding="same", name="c")])
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras", compile=False)
    assert type(loaded.get_layer("c")) is conv.Conv2D
    x = np.random.default_rng(0).normal(size=(2, 3, 3, 2)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
