"""The zoo's shared layers: coordinate channels and the strided 1x1 convolution that oneDNN gets right."""
import subprocess
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from pipeline.models import INPUT_SHAPES, MODELS, build_model  # noqa: E402
from pipeline.models.layers import strided_pointwise  # noqa: E402


@pytest.mark.parametrize("size", [44, 11])
def test_strided_pointwise_is_a_strided_1x1_convolution(size):
    inputs = keras.Input((size, size, 8))
    sampled = keras.Model(inputs, strided_pointwise(inputs, 16, 2, "pointwise"))
    strided = keras.Model(inputs, keras.layers.Conv2D(16, 1, strides=2, padding="same", name="pointwise")(inputs))
    strided.get_layer("pointwise").set_weights(sampled.get_layer("pointwise").get_weights())
    x = np.random.default_rng(0).standard_normal((4, size, size, 8)).astype(np.float32)
    np.testing.assert_allclose(sampled.predict(x, verbose=0), strided.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(MODELS))
def test_no_model_has_a_strided_1x1_convolution(name):
    spec = MODELS[name]
    model = build_model(name, INPUT_SHAPES[spec.task], 7 if spec.task == "expressions" else 30, weights="none")
    strided = [layer.name for layer in model._flatten_layers()
               if isinstance(layer, keras.layers.Conv2D) and tuple(layer.kernel_size) == (1, 1)
               and tuple(layer.strides) != (1, 1)]
    assert strided == []


@pytest.mark.slow
def test_strided_pointwise_gradients_are_right_for_the_shapes_that_break_onednn():
    # In a process of its own: Conv2D(1x1, strides=2) crashes oneDNN on some of these shapes (one
    # input channel, batch 5 segfaults on AVX2; eight channels on AVX-512), so a regression must
    # fail this test, not kill the test run.
    cases = [(1, 5), (4, 5), (8, 1), (8, 31), (12, 32)]
    code = ("from pipeline.bench.onednn import pointwise_gradient_error as e\n"
            f"print(max(e(c, b, 'sampled') for c, b in {cases}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.split()[-1]) < 1e-4


def test_soft_argmax_of_a_sharp_peak_is_the_cells_centre_in_image_scaling():
    from pipeline.models.layers import SpatialSoftArgmax

    logits = np.full((1, 24, 24, 2), -1e4, np.float32)
    logits[0, 5, 10, 0] = 0.0      # row 5, column 10
    logits[0, 23, 0, 1] = 0.0
    positions = np.asarray(SpatialSoftArgmax(96)(logits))[0]
    pixel = lambda cell: cell * 4 + 1.5   # noqa: E731  centre of a 4-px cell, pixel centres at integers
    np.testing.assert_allclose(positions, [pixel(10) / 48 - 1, pixel(5) / 48 - 1, pixel(0) / 48 - 1, pixel(23) / 48 - 1],
                               atol=1e-6)


def test_soft_argmax_of_a_flat_map_is_the_image_centre():
    from pipeline.models.layers import SpatialSoftArgmax

    positions = np.asarray(SpatialSoftArgmax(96)(np.zeros((2, 24, 24, 15), np.float32)))
    np.testing.assert_allclose(positions, (47.5 / 48 - 1), atol=1e-6)   # pixel 47.5, the middle
