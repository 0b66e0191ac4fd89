"""The model zoo: every builder makes the right head, the documented size, and can learn."""
import os
import subprocess
import sys

import numpy as np
import pytest

from pipeline.core.errors import PipelineError
from pipeline.models import INPUT_SHAPES, MODELS, build_model, describe, float32_copy
from pipeline.core.recipes import RECIPES
from pipeline.inference.rundir import RunDir

keras = pytest.importorskip("keras")

# Options that keep a test offline and small; build_model drops the ones a builder does not take.
OFFLINE = {"weights": "none"}


def _cases():
    """(name, n_outputs) pairs: keypoints models with 30 targets, expression models with 7 and 8."""
    for name, spec in MODELS.items():
        for n_outputs in ((30,) if spec.task == "keypoints" else (7, 8)):
            yield pytest.param(name, n_outputs, id=f"{name}-{n_outputs}")


@pytest.mark.parametrize("name, n_outputs", list(_cases()))
def test_builds_with_documented_size(name, n_outputs):
    spec = MODELS[name]
    model = build_model(name, INPUT_SHAPES[spec.task], n_outputs, **OFFLINE)

    assert model.input_shape == (None, *INPUT_SHAPES[spec.task])
    assert model.output_shape == (None, n_outputs)
    # REFERENCE_PARAMS is counted by hand in each module, so this checks the layout, not Keras.
    assert model.count_params() == pytest.approx(spec.reference_params, rel=0.10)
    last = model.layers[-1]
    expected_activation = "linear" if spec.task == "keypoints" else "softmax"   # a layer without one is linear
    assert last.get_config().get("activation", "linear") == expected_activation


def tiny_batch(task, n_outputs, rows=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((rows, *INPUT_SHAPES[task]), dtype=np.float32)
    if task == "keypoints":
        y = rng.uniform(-1, 1, (rows, n_outputs)).astype(np.float32)
    else:
        y = np.arange(rows) % n_outputs
    return x, y


HEAVY = {"cliquenet", "densenet"}   # 11-13 s each on 2 cores: with the slow tests, so the quick loop stays quick


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in MODELS])
def test_a_few_steps_reduce_the_loss(name):
    keras.utils.set_random_seed(0)
    spec = MODELS[name]
    n_outputs = 30 if spec.task == "keypoints" else 7
    # Without dropout the training-mode loss of a fixed batch is deterministic, so a drop is the
    # optimizer's doing. (evaluate() is no judge: it uses BN moving statistics, which a handful
    # of steps barely moves.)
    model = build_model(name, INPUT_SHAPES[spec.task], n_outputs, dropout=0.0, conv_dropout=0.0,
                        **OFFLINE)
    loss = "mse" if spec.task == "keypoints" else "sparse_categorical_crossentropy"
    # Eager: for a few steps, tracing the graph costs more than it saves (2-3x slower on 2 cores).
    model.compile(optimizer=keras.optimizers.Adam(3e-4), loss=loss, run_eagerly=True)
    x, y = tiny_batch(spec.task, n_outputs)

    losses = [float(model.train_on_batch(x, y)) for _ in range(4)]   # each before its update
    assert losses[-1] < losses[0]


def test_unknown_model_names_the_valid_ones():
    with pytest.raises(PipelineError, match="mini_xception"):
        build_model("alexnet", (48, 48, 1), 7)


def test_options_a_builder_does_not_take_are_dropped():
    model = build_model("mini_xception", (48, 48, 1), 7, l2=0.0, weights="none", dropout=0.3)
    assert model.count_params() == MODELS["mini_xception"].reference_params


def test_a_named_variant_builds_its_family_with_its_own_options():
    wide = build_model("compact_vgg_wide", (48, 48, 1), 7, dropout=0.0, widths=(8, 8, 8))
    assert wide.count_params() == MODELS["compact_vgg_wide"].reference_params   # its widths, not the caller's
    assert wide.get_layer("block3_conv2_conv").filters == 256
    assert build_model("compact_vgg", (48, 48, 1), 7).count_params() == MODELS["compact_vgg"].reference_params


def test_compact_vgg_pools_before_the_batch_norm_that_ends_a_stage():
    model = build_model("compact_vgg", (48, 48, 1), 7)
    normalized = {layer.name: tuple(layer.input.shape[1:])
                  for layer in model.layers if layer.name.endswith("_bn")}
    assert model.get_layer("stem_conv").output.shape[1:] == (48, 48, 16) and normalized["stem_bn"] == (24, 24, 16)
    assert normalized["block1_conv1_bn"] == (24, 24, 32) and normalized["block1_conv2_bn"] == (12, 12, 32)
    assert normalized["block2_conv2_bn"] == (6, 6, 64) and normalized["block3_conv2_bn"] == (6, 6, 128)


def test_every_recipe_names_a_model_of_its_task():
    for recipe in RECIPES.values():
        assert all(MODELS[recipe[task]["model"]].task == task for task in ("keypoints", "expressions"))


def test_describe_lists_parameter_counts():
    rows = describe("keypoints")
    assert [row[0] for row in rows] == [n for n, s in MODELS.items() if s.task == "keypoints"]
    for name, task, params, summary in rows:
        assert params == pytest.approx(MODELS[name].reference_params, rel=0.10) and summary


@pytest.mark.slow
def test_every_saved_model_loads_where_predict_loads_it(tmp_path):
    # A fresh process, as `run.py predict` is: it must register whatever custom layers the models use.
    images = {task: np.random.default_rng(0).random((2, *shape), dtype=np.float32)
              for task, shape in INPUT_SHAPES.items()}
    expected = {}
    for name, spec in MODELS.items():
        model = build_model(name, INPUT_SHAPES[spec.task], 30 if spec.task == "keypoints" else 7, **OFFLINE)
        (tmp_path / name).mkdir()
        model.save(tmp_path / name / "model.keras")
        expected[name] = model.predict(images[spec.task], verbose=0)
        keras.backend.clear_session()
    np.savez(tmp_path / "images.npz", **images)
    script = (
        "import sys, pathlib, numpy as np\n"
        "from pipeline.inference.rundir import RunDir\n"
        "from pipeline.models import MODELS\n"
        "root = pathlib.Path(sys.argv[1]); images = np.load(root / 'images.npz')\n"
        "np.savez(root / 'loaded.npz', **{name: RunDir(root / name).load_models()[0].predict(images[spec.task], verbose=0)\n"
        "                                 for name, spec in MODELS.items()})\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                            timeout=600, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = np.load(tmp_path / "loaded.npz")
    for name, outputs in expected.items():
        np.testing.assert_allclose(loaded[name], outputs, rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("name", ["compact_vgg", "heatmap_keypoints"])
def test_float32_copy_of_a_mixed_precision_model_computes_in_float32_with_its_weights(name):
    """What export does to a run trained in mixed bfloat16 (ONNX Runtime has no bfloat16 convolution)."""
    task = MODELS[name].task
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed = build_model(name, INPUT_SHAPES[task], 30 if task == "keypoints" else 7, **OFFLINE)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert any(layer.compute_dtype == "bfloat16" for layer in mixed.layers)
    copy = float32_copy(mixed)
    assert {layer.compute_dtype for layer in copy.layers} == {"float32"}
    images = np.random.default_rng(0).random((3, *INPUT_SHAPES[task]), dtype=np.float32)
    for ours, theirs in zip(copy.get_weights(), mixed.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    # bfloat16 keeps 8 bits of mantissa: the two agree to its rounding, and the copy answers in float32
    outputs = copy.predict(images, verbose=0)
    assert outputs.dtype == np.float32
    np.testing.assert_allclose(outputs, mixed.predict(images, verbose=0).astype(np.float32), atol=0.05)


def test_heatmap_upsampling_under_mixed_precision_gives_keras_numbers_without_its_clip():
    """The decoder upsamples in float32 (heatmap_keypoints.py says why): the join gets the numbers Keras's
    bfloat16 resize gives, and the TensorFlow graph has none of the saturate-cast's Minimum/Maximum ops."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_model("heatmap_keypoints", INPUT_SHAPES["keypoints"], 30)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    upsampling = [layer for layer in model.layers if isinstance(layer, keras.layers.UpSampling2D)]
    assert len(upsampling) == 3 and {layer.compute_dtype for layer in upsampling} == {"float32"}
    maps = keras.ops.cast(np.random.default_rng(0).normal(size=(2, 6, 6, 8)) * 100, "bfloat16")
    ours = keras.ops.cast(upsampling[0](maps), "bfloat16")   # as the join casts it
    theirs = keras.ops.image.resize(maps, (12, 12), interpolation="bilinear")
    assert theirs.dtype == "bfloat16"
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours).astype(np.float32),
                                  keras.ops.convert_to_numpy(theirs).astype(np.float32))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        forward = tf.function(lambda x: model(x, training=True))
        graph = forward.get_concrete_function(tf.TensorSpec((2, 96, 96, 1), tf.float32)).graph
        clips = [op.name for op in graph.get_operations() if op.type in ("Minimum", "Maximum")]
        assert clips == []


@pytest.mark.slow
def test_model_code_runs_under_jax():
    # Model code uses only keras.layers / keras.ops, so one train step must also work under JAX.
    script = (
        "import numpy as np, keras\n"
        "from pipeline.models import build_model\n"
        "assert keras.backend.backend() == 'jax'\n"
        "m = build_model('mini_xception', (48, 48, 1), 7)\n"
        "m.compile('adam', 'sparse_categorical_crossentropy')\n"
        "x = np.random.default_rng(0).random((4, 48, 48, 1), dtype=np.float32)\n"
        "print(m.train_on_batch(x, np.arange(4)))\n"
    )
    # Not eager: JAX compiles every eager op on first use, so one jitted step is far quicker.
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]


def test_cliquenet_stage_two_reuses_the_stage_one_convolutions():
    from pipeline.models import cliquenet

    model = cliquenet.build((48, 48, 1), 7, blocks=3, nodes=5, channels=36)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    # Per block 5 input edges + 20 node-to-node edges; 2 transition convs; 1 stem conv. Without
    # sharing, stage II would add another 20 per block.
    assert len(convs) == 3 * (5 + 20) + 2 + 1
    edges = [layer for layer in convs if "_node" in layer.name and "_to_node" in layer.name
             and not layer.name.split("_")[1] == "input"]
    assert len(edges) == 3 * 20
    # Each node-to-node conv is called twice (stage I where the edge exists, always in stage II)
    # through one set of weights.
    calls = {layer.name: len(layer._inbound_nodes) for layer in edges}
    assert sorted(set(calls.values())) == [1, 2]
    assert sum(n == 2 for n in calls.values()) == 3 * 10   # j < i edges: used by both stages
    stage2_bn = [layer for layer in model.layers if "_stage2_" in layer.name and layer.name.endswith("_bn")]
    assert len(stage2_bn) == 3 * 5


def test_vgg16_without_a_network_fails_in_one_line(monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: "
                        "[Errno -2] Name or service not known\nmore detail")
    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(PipelineError) as error:
        build_model("vgg16_transfer", (48, 48, 1), 7, weights="imagenet")
    assert "\n" not in str(error.value) and "weights=none" in str(error.value)


def test_vgg16_trains_only_its_head_unless_fine_tuning():
    def trainable(model):
        return sum(int(np.prod(w.shape)) for w in model.trainable_weights)

    head = 512 * 256 + 256 + 256 * 256 + 256 + 256 * 128 + 128 + 128 * 7 + 7
    assert trainable(build_model("vgg16_transfer", (48, 48, 1), 7, weights="none")) == head
    block5 = 3 * (3 * 3 * 512 * 512 + 512)
    tuned = build_model("vgg16_transfer", (48, 48, 1), 7, weights="none", fine_tune_last_block=True)
    assert trainable(tuned) == head + block5
