"""Optimizers, the warm-up cosine schedule, plateau cuts and class weights for the rare Disgust class."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from pipeline.core.errors import PipelineError  # noqa: E402
from pipeline.models.schedules import cosine_with_warmup  # noqa: E402
from pipeline.training import optimizers, resume  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


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


def test_cosine_rises_then_decays_to_zero():
    schedule = cosine_with_warmup(0.1, warmup_steps=10, total_steps=110)
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)   # the library's, not ours
    rates = [float(schedule(step)) for step in range(111)]
    assert rates[0] == 0 and rates[5] == pytest.approx(0.05) and rates[10] == pytest.approx(0.1)
    assert all(a <= b for a, b in zip(rates[:10], rates[1:11]))
    assert rates[60] == pytest.approx(0.05, abs=1e-6)
    assert all(a >= b for a, b in zip(rates[10:], rates[11:])) and rates[110] == pytest.approx(0, abs=1e-9)
    flat = cosine_with_warmup(0.1, warmup_steps=0, total_steps=10)
    assert float(flat(0)) == pytest.approx(0.1) and float(flat(10)) == pytest.approx(0, abs=1e-9)


def test_learning_rate_follows_the_schedule_parameter():
    params = {"schedule": "cosine", "lr": 0.1, "warmup_epochs": 2, "epochs": 10}
    rate = optimizers.learning_rate(params, steps_per_epoch=5)
    assert (rate.warmup_steps, rate.decay_steps, rate.warmup_target) == (10, 40, 0.1)
    assert optimizers.learning_rate({**params, "schedule": "none"}, 5) == 0.1


def test_a_checkpoint_saved_with_the_old_hand_made_schedule_loads_and_trains_on(tmp_path):
    # tests/fixtures/warmup_cosine_checkpoint.keras was saved by commit 966001e's code: a tiny model,
    # Adam over WarmupCosine(peak 0.01, warm-up 4 steps, 20 in all), after 2 training steps.
    folder = tmp_path / "backup"
    (folder / "epoch-0001").mkdir(parents=True)
    shutil.copyfile(FIXTURES / "warmup_cosine_checkpoint.keras", folder / "epoch-0001" / "model.keras")
    (folder / "state.json").write_text(json.dumps({"epoch": 1, "folder": "epoch-0001"}))
    model, state = resume.load(folder)
    schedule = model.optimizer._learning_rate   # the schedule itself (learning_rate is its current value)
    assert isinstance(schedule, keras.optimizers.schedules.CosineDecay)
    assert (schedule.warmup_steps, schedule.decay_steps, schedule.warmup_target) == (4, 16, 0.01)
    assert int(model.optimizer.iterations) == 2 and state["epoch"] == 1   # its optimizer state came along
    x = np.random.default_rng(0).random((8, 4), dtype=np.float32)
    model.fit(x, np.ones((8, 2), np.float32), batch_size=4, epochs=1, verbose=0)
    assert int(model.optimizer.iterations) == 4
    assert float(model.optimizer.learning_rate) == pytest.approx(float(schedule(4)))


def test_cosine_drives_the_optimizer_step_by_step_in_fit():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    schedule = cosine_with_warmup(0.1, warmup_steps=2, total_steps=6)
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
