"""feed.for_fit: Batches through tf.data train on exactly the batches Keras's own PyDataset feed gives."""
import keras
import numpy as np
import pytest

from pipeline.training import augment, distribute, feed


def _noisy(x, y, rng):   # draws that differ with every (seed, epoch, batch index)
    return x + rng.normal(0, 0.1, x.shape).astype(np.float32), y


def _data(rows=37):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (rows, 8, 8, 1), dtype=np.uint8)
    return x, rng.normal(size=(rows, 3)).astype(np.float32)


def _model():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8, 8, 1))
    hidden = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    outputs = keras.layers.Dense(3)(keras.layers.Flatten()(hidden))
    model = keras.Model(inputs, outputs)
    # two steps a call over 5 steps an epoch: a call ends at every epoch's end
    model.compile(keras.optimizers.Adam(0.01), loss="mse", steps_per_execution=2)
    return model


@pytest.mark.parametrize("first_epoch", [0, 2])
def test_the_model_trains_on_what_the_pydataset_feed_gave_it(first_epoch):
    x, y = _data()
    weights = {}
    for way in ("keras", "feed"):
        batches = augment.Batches(x, y, 8, augment=_noisy, seed=3, workers=2)
        batches.set_epoch(first_epoch)   # a resumed run (train.py)
        model = _model()
        if way == "keras":
            model.fit(batches, epochs=first_epoch + 3, initial_epoch=first_epoch, shuffle=False, verbose=0)
        else:
            distribute.Placement(scope=None).fit(model, batches, epochs=first_epoch + 3, initial_epoch=first_epoch,
                                                 verbose=0)
        weights[way] = model.get_weights()
    for fed, expected in zip(weights["feed"], weights["keras"]):
        np.testing.assert_allclose(fed, expected, rtol=1e-6, atol=1e-7)


def test_each_epoch_draws_that_epochs_batches_in_order():
    x, y = _data(20)
    weights = np.arange(20, dtype=np.float32)
    batches = augment.Batches(x, y, 8, augment=_noisy, sample_weight=weights, workers=2)
    reference = augment.Batches(x, y, 8, augment=_noisy, sample_weight=weights)
    dataset, (epoch_of,) = feed.for_fit(batches)
    for epoch in (0, 1, 4):
        epoch_of.on_epoch_begin(epoch)
        reference.set_epoch(epoch + 1)
        drawn = [tuple(part.numpy() for part in element) for element in dataset]
        assert len(drawn) == len(reference) == 3
        for index, element in enumerate(drawn):
            for part, expected in zip(element, reference[index], strict=True):
                np.testing.assert_array_equal(part, expected)


def test_other_backends_take_the_batches_as_they_are(monkeypatch):
    batches = augment.Batches(*_data(), 8)
    monkeypatch.setattr(keras.config, "backend", lambda: "jax")
    assert feed.for_fit(batches) == (batches, [])
