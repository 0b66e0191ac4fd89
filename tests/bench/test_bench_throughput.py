"""python -m pipeline.bench train runs and prints its figures, for both precisions (it is timed only when run by hand)."""
import re

import pytest
from click.testing import CliRunner

pytest.importorskip("keras")

from pipeline.bench import cli, throughput  # noqa: E402,F401  throughput registers the command
from pipeline.bench.cpu import recipe_batch  # noqa: E402

pytestmark = pytest.mark.slow


def test_train_benchmark_prints_both_ways_and_the_efficiency():
    result = CliRunner().invoke(cli, ["train", "--task", "expressions", "--rows", "128", "--epochs", "1", "--repeats", "2",
                                      "--precision", "both", "--no-jax"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    for precision, suffix in (("float32", ""), ("mixed", "_mixed")):
        batch = recipe_batch("compact_vgg", precision)   # the recipe's, in each precision: 128 and 64
        assert re.search(rf"expressions\s+compact_vgg\s+batch\s+{batch} {precision}\s*: input path\s+\d+ img/s "
                         r"\(\d+ worker\(s\)\), in memory\s+\d+ img/s", result.output), result.output
        efficiency, low, high = map(float, re.search(rf"input_efficiency_expressions{suffix}=([0-9.]+)"
                                                     r"  \(95% CI (-?[0-9.]+)\.\.([0-9.]+)\)", result.output).groups())
        assert efficiency > 0 and low <= efficiency <= high
        assert float(re.search(rf"images_per_second_expressions{suffix}=([0-9.]+)", result.output).group(1)) > 0


def _recording(monkeypatch):
    """What each timed way gives the feed (whether its Batches augment), and what each fit gets
    (whether it has heap.KeepBuffers and an augmenting model): run.py train's feed (training/feed.py)."""
    import keras

    from pipeline.training import feed, heap

    fed, fitted = [], []
    for_fit, fit = feed.for_fit, keras.Model.fit

    def recording_for_fit(batches):
        fed.append(batches.augment is None)
        return for_fit(batches)

    def recording_fit(self, data, *args, callbacks=None, **kwargs):
        fitted.append((any(isinstance(c, heap.KeepBuffers) for c in callbacks or ()),
                       any("Random" in type(layer).__name__ for layer in self.layers)))
        return fit(self, data, *args, callbacks=callbacks, **kwargs)

    monkeypatch.setattr(feed, "for_fit", recording_for_fit)
    monkeypatch.setattr(keras.Model, "fit", recording_fit)
    return fed, fitted


def test_both_ways_run_with_run_py_trains_malloc_settings(monkeypatch):
    """Without heap.KeepBuffers the in-memory fit pays tf.data's malloc settings once the input path's
    generator has run, and the efficiency compares unlike things (1.69 one run, 0.52 the next)."""
    fed, fitted = _recording(monkeypatch)
    throughput.measure("expressions", rows=128, epochs=1)
    # augmenting batches, then the same feed of batches augmented beforehand; a warm-up and one timing each
    assert fed == [False, True]
    assert fitted == [(True, False)] * 4


def test_device_augmentation_is_timed_against_the_plain_model(monkeypatch):
    fed, fitted = _recording(monkeypatch)
    throughput.measure("expressions", rows=128, epochs=1, augment_on="device")
    # the input path: plain batches into the augmenting model; in memory: the plain model
    assert fed == [True, True]
    assert fitted == [(True, True), (True, False)] * 2
    result = CliRunner().invoke(cli, ["train", "--task", "keypoints", "--augment-on", "device", "--no-jax"])
    assert result.exit_code != 0 and "for expressions" in result.output
