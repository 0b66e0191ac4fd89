"""The fused Adam and AdamW: TensorFlow's one-kernel update with Keras's arithmetic, saved and loaded by name."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from pipeline.models import adam, load_model  # noqa: E402
from pipeline.models.schedules import cosine_with_warmup  # noqa: E402


def _variables():
    rng = np.random.default_rng(0)
    return [keras.Variable(rng.normal(size=shape).astype(np.float32)) for shape in ((3, 3, 2, 4), (4,), (7, 5))]


def _trained(optimizer, steps=6):
    """Variables of three shapes after `steps` compiled updates with gradients of very different sizes."""
    rng = np.random.default_rng(1)
    variables = _variables()
    gradients = [[tf.constant(rng.normal(size=v.shape).astype(np.float32) * 10.0 ** -k)
                  for k, v in enumerate(variables)] for _ in range(steps)]
    optimizer.build(variables)
    apply = tf.function(lambda grads: optimizer.apply_gradients(zip(grads, variables)))
    for grads in gradients:
        apply(grads)
    graph = apply.get_concrete_function(gradients[0]).graph
    return [v.numpy() for v in variables], {op.type for op in graph.get_operations()}


@pytest.mark.parametrize("ours, theirs, options", [
    (adam.Adam, keras.optimizers.Adam, {}),
    (adam.Adam, keras.optimizers.Adam, {"weight_decay": 0.01}),
    (adam.AdamW, keras.optimizers.AdamW, {"weight_decay": 0.05}),
])
def test_fused_update_is_keras_adam_to_float32_rounding(ours, theirs, options):
    assert keras.config.backend() == "tensorflow"
    schedule = lambda: cosine_with_warmup(0.01, warmup_steps=2, total_steps=10)   # noqa: E731
    fused, fused_ops = _trained(ours(schedule(), **options))
    plain, plain_ops = _trained(theirs(schedule(), **options))
    assert "ResourceApplyAdam" in fused_ops and "ResourceApplyAdam" not in plain_ops   # one kernel per variable
    for a, b in zip(fused, plain):
        np.testing.assert_allclose(a, b, rtol=0, atol=4 * np.spacing(np.float32(np.abs(b).max())))
    start = [v.numpy() for v in _variables()]
    assert all(np.abs(a - s).max() > 1e-3 for a, s in zip(fused, start))   # and it did move them


def test_amsgrad_takes_keras_path():
    values, ops = _trained(adam.Adam(0.01, amsgrad=True))
    reference, _ = _trained(keras.optimizers.Adam(0.01, amsgrad=True))
    assert "ResourceApplyAdam" not in ops
    for a, b in zip(values, reference):
        np.testing.assert_array_equal(a, b)


def test_a_model_saved_with_it_loads_with_its_state(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=adam.Adam(cosine_with_warmup(0.01, 2, 10)), loss="mse")
    x = np.random.default_rng(1).normal(size=(16, 3)).astype(np.float32)
    model.fit(x, x[:, :2], batch_size=8, epochs=2, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = load_model(tmp_path / "model.keras")
    assert type(loaded.optimizer) is adam.Adam and int(loaded.optimizer.iterations) == 4
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    loaded.fit(x, x[:, :2], batch_size=8, epochs=1, verbose=0, shuffle=False)
    model.fit(x, x[:, :2], batch_size=8, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)
