"""python -m pipeline.bench train runs and prints its figures, for both precisions (it is timed only when run by hand)."""
import re

import pytest
from click.testing import CliRunner

pytest.importorskip("keras")

from pipeline.bench import cli, throughput  # noqa: E402,F401  throughput registers the command

pytestmark = pytest.mark.slow


def test_train_benchmark_prints_both_ways_and_the_efficiency():
    result = CliRunner().invoke(cli, ["train", "--task", "expressions", "--rows", "128", "--epochs", "1", "--repeats", "2",
                                      "--precision", "both", "--no-jax"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    for precision, suffix in (("float32", ""), ("mixed", "_mixed")):
        assert re.search(rf"expressions\s+compact_vgg\s+batch\s+64 {precision}\s*: input path\s+\d+ img/s "
                         r"\(\d+ worker\(s\)\), in memory\s+\d+ img/s", result.output), result.output
        efficiency, low, high = map(float, re.search(rf"input_efficiency_expressions{suffix}=([0-9.]+)"
                                                     r"  \(95% CI (-?[0-9.]+)\.\.([0-9.]+)\)", result.output).groups())
        assert efficiency > 0 and low <= efficiency <= high
        assert float(re.search(rf"images_per_second_expressions{suffix}=([0-9.]+)", result.output).group(1)) > 0


def test_both_ways_run_with_run_py_trains_malloc_settings(monkeypatch):
    """Without heap.KeepBuffers the in-memory fit pays tf.data's malloc settings once the input path's
    generator has run, and the efficiency compares unlike things (1.69 one run, 0.52 the next)."""
    import keras

    from pipeline.training import heap

    seen = []
    fit = keras.Model.fit

    def recording_fit(self, *args, callbacks=None, **kwargs):
        seen.append((type(args[0]).__name__, args[0].augment is None))
        assert any(isinstance(c, heap.KeepBuffers) for c in callbacks or ()), seen[-1]
        return fit(self, *args, callbacks=callbacks, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", recording_fit)
    throughput.measure("expressions", rows=128, epochs=1)
    # a warm-up and one timing each: augmenting batches, then the same feed of batches augmented beforehand
    assert seen == [("Batches", False), ("Batches", True)] * 2


def test_device_augmentation_is_timed_against_the_plain_model(monkeypatch):
    import keras

    fitted = []
    fit = keras.Model.fit

    def recording_fit(self, data, *args, **kwargs):
        fitted.append((type(data).__name__, data.augment is None if type(data).__name__ == "Batches" else None,
                       any("Random" in type(layer).__name__ for layer in self.layers)))
        return fit(self, data, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", recording_fit)
    throughput.measure("expressions", rows=128, epochs=1, augment_on="device")
    # the input path: plain batches into the augmenting model; in memory: the plain model
    assert fitted == [("Batches", True, True), ("Batches", True, False)] * 2
    result = CliRunner().invoke(cli, ["train", "--task", "keypoints", "--augment-on", "device", "--no-jax"])
    assert result.exit_code != 0 and "for expressions" in result.output
