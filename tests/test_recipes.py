"""Recipes: named optimizers and schedules, class weights for the rare Disgust class."""
import numpy as np
import pytest

from pipeline import recipes
from pipeline.errors import PipelineError

keras = pytest.importorskip("keras")


@pytest.mark.parametrize("name, cls", [("adam", "Adam"), ("sgd", "SGD"), ("adamax", "Adamax")])
def test_make_optimizer(name, cls):
    optimizer = recipes.make_optimizer(name, 0.01)
    assert type(optimizer).__name__ == cls
    assert float(optimizer.learning_rate) == pytest.approx(0.01)


def test_unknown_names_list_the_choices():
    with pytest.raises(PipelineError, match="adamax"):
        recipes.make_optimizer("rmsprop", 0.1)
    with pytest.raises(PipelineError, match="cosine"):
        recipes.schedule_callbacks("step", 0.1, 10, 5)
    with pytest.raises(PipelineError, match="balanced"):
        recipes.class_weights([0, 1], 2, "inverse")


def test_cosine_decays_from_lr_towards_zero():
    rates = [recipes.cosine_lr(epoch, 0.1, 10) for epoch in range(10)]
    assert rates[0] == pytest.approx(0.1)
    assert rates[5] == pytest.approx(0.05)
    assert all(a > b > 0 for a, b in zip(rates, rates[1:]))


def test_schedule_callbacks():
    assert recipes.schedule_callbacks("none", 0.1, 10, 6) == []
    (cosine,) = recipes.schedule_callbacks("cosine", 0.1, 10, 6)
    assert isinstance(cosine, keras.callbacks.LearningRateScheduler)
    assert cosine.schedule(5) == pytest.approx(0.05)
    (plateau,) = recipes.schedule_callbacks("plateau", 0.1, 10, 6)
    assert isinstance(plateau, keras.callbacks.ReduceLROnPlateau)
    assert plateau.monitor == "val_loss" and plateau.patience == 2   # well before early stopping


def test_cosine_schedule_drives_the_optimizer_in_fit():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(recipes.make_optimizer("adam", 0.1), "mse")
    x = np.zeros((4, 2), np.float32)
    model.fit(x, x[:, :1], epochs=3, verbose=0,
              callbacks=recipes.schedule_callbacks("cosine", 0.1, 3, 5))
    assert float(model.optimizer.learning_rate) == pytest.approx(recipes.cosine_lr(2, 0.1, 3))


def fer2013_like_labels():
    # Class sizes shaped like FER2013's training set: Disgust (1) is about 1.5% of the rows.
    counts = [400, 44, 410, 720, 480, 320, 500]
    return np.repeat(np.arange(7), counts), np.array(counts)


def test_balanced_weights_equalise_the_classes_and_keep_the_mean():
    labels, counts = fer2013_like_labels()
    weights = recipes.class_weights(labels, 7, "balanced")
    per_class_total = counts * np.array([weights[c] for c in range(7)])
    assert np.allclose(per_class_total, per_class_total[0])
    assert np.mean([weights[c] for c in labels]) == pytest.approx(1.0)
    assert max(weights, key=weights.get) == 1


def test_sqrt_weights_are_milder_and_keep_the_mean():
    labels, _ = fer2013_like_labels()
    balanced = recipes.class_weights(labels, 7, "balanced")
    sqrt = recipes.class_weights(labels, 7, "sqrt")
    assert 1 < sqrt[1] < balanced[1]
    assert np.mean([sqrt[c] for c in labels]) == pytest.approx(1.0)


def test_absent_classes_and_none():
    assert recipes.class_weights([0, 0, 1], 3, "none") == {0: 1.0, 1: 1.0, 2: 1.0}
    weights = recipes.class_weights([0, 0, 1], 3, "balanced")   # no contempt rows, say
    assert weights[2] == 1.0 and weights[1] == pytest.approx(1.5)


def test_soft_label_loss_takes_vote_distributions():
    loss = recipes.soft_label_loss()
    votes = np.array([[0.7, 0.3, 0.0]], np.float32)
    assert float(loss(votes, votes)) < float(loss(votes, np.array([[0.3, 0.7, 0.0]], np.float32)))
