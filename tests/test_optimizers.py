"""Optimizers, the warm-up cosine schedule, plateau cuts and class weights for the rare Disgust class."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")

from pipeline.training import optimizers  # noqa: E402
from pipeline.core.errors import PipelineError  # noqa: E402


@pytest.mark.parametrize("name, cls", [("adam", "Adam"), ("adamw", "AdamW"), ("sgd", "SGD"), ("adamax", "Adamax")])
def test_make_optimizer(name, cls):
    optimizer = optimizers.make_optimizer(name, 0.01, weight_decay=1e-4)
    assert type(optimizer).__name__ == cls
    assert float(optimizer.learning_rate) == pytest.approx(0.01)
    assert optimizer.weight_decay == pytest.approx(1e-4)


def test_unknown_names_list_the_choices():
    with pytest.raises(PipelineError, match="adamax"):
        optimizers.make_optimizer("rmsprop", 0.1)
    with pytest.raises(PipelineError, match="balanced"):
        optimizers.class_weights([0, 1], 2, "inverse")


def test_warmup_cosine_rises_then_decays_to_zero():
    schedule = optimizers.WarmupCosine(0.1, warmup_steps=10, total_steps=110)
    rates = [float(schedule(step)) for step in range(111)]
    assert rates[0] == pytest.approx(0.01) and rates[9] == pytest.approx(0.1)
    assert rates[60] == pytest.approx(0.05, abs=1e-6)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:])) and rates[110] == pytest.approx(0, abs=1e-9)
    assert optimizers.WarmupCosine.from_config(schedule.get_config()).get_config() == schedule.get_config()


def test_learning_rate_follows_the_schedule_parameter():
    params = {"schedule": "cosine", "lr": 0.1, "warmup_epochs": 2, "epochs": 10}
    rate = optimizers.learning_rate(params, steps_per_epoch=5)
    assert (rate.warmup_steps, rate.total_steps) == (10, 50)
    assert optimizers.learning_rate({**params, "schedule": "none"}, 5) == 0.1


def test_cosine_drives_the_optimizer_step_by_step_in_fit():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    schedule = optimizers.WarmupCosine(0.1, warmup_steps=2, total_steps=6)
    model.compile(optimizers.make_optimizer("adam", schedule), "mse")
    x = np.zeros((8, 2), np.float32)
    model.fit(x, x[:, :1], batch_size=4, epochs=2, verbose=0)   # 4 steps
    assert float(model.optimizer.learning_rate) == pytest.approx(float(schedule(4)))


def test_plateau_cuts_well_before_early_stopping():
    params = {"schedule": "plateau", "patience": 6, "lr": 0.1}
    (plateau,) = optimizers.schedule_callbacks(params, "val_accuracy", "max")
    assert isinstance(plateau, keras.callbacks.ReduceLROnPlateau)
    assert plateau.monitor == "val_accuracy" and plateau.patience == 2
    assert optimizers.schedule_callbacks({**params, "schedule": "cosine"}, "val_accuracy", "max") == []


def fer2013_like_labels():
    # Class sizes shaped like FER2013's training set: Disgust (1) is about 1.5% of the rows.
    counts = [400, 44, 410, 720, 480, 320, 500]
    return np.repeat(np.arange(7), counts), np.array(counts)


def test_balanced_weights_equalise_the_classes_and_keep_the_mean():
    labels, counts = fer2013_like_labels()
    weights = optimizers.class_weights(labels, 7, "balanced")
    per_class_total = counts * np.array([weights[c] for c in range(7)])
    assert np.allclose(per_class_total, per_class_total[0])
    assert np.mean([weights[c] for c in labels]) == pytest.approx(1.0)
    assert max(weights, key=weights.get) == 1


def test_sqrt_weights_are_milder_and_keep_the_mean():
    labels, _ = fer2013_like_labels()
    balanced = optimizers.class_weights(labels, 7, "balanced")
    sqrt = optimizers.class_weights(labels, 7, "sqrt")
    assert 1 < sqrt[1] < balanced[1]
    assert np.mean([sqrt[c] for c in labels]) == pytest.approx(1.0)


def test_absent_classes_and_none():
    assert optimizers.class_weights([0, 0, 1], 3, "none") == {0: 1.0, 1: 1.0, 2: 1.0}
    weights = optimizers.class_weights([0, 0, 1], 3, "balanced")   # no contempt rows, say
    assert weights[2] == 1.0 and weights[1] == pytest.approx(1.5)
