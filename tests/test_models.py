"""The model zoo: every builder makes the right head, the documented size, and can learn."""
import subprocess
import sys

import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.models import DEFAULT_MODEL, INPUT_SHAPES, MODELS, build_model, describe

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
    expected_activation = "linear" if spec.task == "keypoints" else "softmax"
    assert last.get_config()["activation"] == expected_activation


def tiny_batch(task, n_outputs, rows=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((rows, *INPUT_SHAPES[task]), dtype=np.float32)
    if task == "keypoints":
        y = rng.uniform(-1, 1, (rows, n_outputs)).astype(np.float32)
    else:
        y = np.arange(rows) % n_outputs
    return x, y


@pytest.mark.parametrize("name", list(MODELS))
def test_a_few_steps_reduce_the_loss(name):
    keras.utils.set_random_seed(0)
    spec = MODELS[name]
    n_outputs = 30 if spec.task == "keypoints" else 7
    model = build_model(name, INPUT_SHAPES[spec.task], n_outputs, **OFFLINE)
    loss = "mse" if spec.task == "keypoints" else "sparse_categorical_crossentropy"
    # Eager: for five steps, tracing the graph costs more than it saves (2-3x slower on 2 cores).
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, run_eagerly=True)
    x, y = tiny_batch(spec.task, n_outputs)

    before = model.evaluate(x, y, verbose=0)
    for _ in range(5):
        model.train_on_batch(x, y)
    after = model.evaluate(x, y, verbose=0)
    assert after < before


def test_unknown_model_names_the_valid_ones():
    with pytest.raises(PipelineError, match="mini_xception"):
        build_model("alexnet", (48, 48, 1), 7)


def test_options_a_builder_does_not_take_are_dropped():
    model = build_model("mini_xception", (48, 48, 1), 7, l2=0.0, weights="none", dropout=0.3)
    assert model.count_params() == MODELS["mini_xception"].reference_params


def test_defaults_exist_for_both_tasks():
    assert {MODELS[name].task for name in DEFAULT_MODEL.values()} == {"keypoints", "expressions"}
    assert all(MODELS[name].task == task for task, name in DEFAULT_MODEL.items())


def test_describe_lists_parameter_counts():
    rows = describe("keypoints")
    assert [row[0] for row in rows] == [n for n, s in MODELS.items() if s.task == "keypoints"]
    for name, task, params, summary in rows:
        assert params == pytest.approx(MODELS[name].reference_params, rel=0.10) and summary


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
    env = {**__import__("os").environ, "KERAS_BACKEND": "jax"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
