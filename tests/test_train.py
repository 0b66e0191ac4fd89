import json

import numpy as np
import pytest

from pipeline import train
from pipeline.errors import PipelineError


def test_validation_split_is_stratified():
    labels = np.repeat(np.arange(4), [40, 30, 20, 10])
    _, val = train.split_indices(len(labels), 0.2, labels=labels)
    assert np.bincount(labels[val]).tolist() == [8, 6, 4, 2]


class ExhaustedModel:
    def fit(self, *args, **kwargs):
        raise RuntimeError("RESOURCE_EXHAUSTED: OOM when allocating tensor with shape[512,96,96,32]")


def test_device_out_of_memory_suggests_a_smaller_batch():
    with pytest.raises(PipelineError, match="try a smaller --batch-size") as error:
        train._fit(ExhaustedModel(), None, {"epochs": 1, "batch_size": 512}, [], 0)
    assert "--batch-size 512" in str(error.value)


@pytest.mark.slow
def test_same_seed_same_data_same_model(tmp_path):
    from click.testing import CliRunner

    from pipeline.competitions import EXPRESSIONS, KEYPOINTS
    from run import cli

    quick = ["--sample-size", "0.1", "--epochs", "3", "--batch-size", "16"]
    results = []
    for attempt in range(2):
        result = CliRunner().invoke(cli, ["--root", str(tmp_path), "all", *quick, "--force"])
        assert result.exit_code == 0, result.output + repr(result.exception)
        metrics = {}
        for competition in (KEYPOINTS, EXPRESSIONS):
            runs = tmp_path / "data" / "runs" / competition.slug
            found = json.loads((runs / (runs / "latest").read_text().strip() / "metrics.json").read_text())
            metrics[competition.task] = {k: v for k, v in found.items() if k != "train_seconds"}
        results.append(metrics)
    assert results[0] == results[1]
    assert results[0]["keypoints"]["val_rmse"] != results[0]["keypoints"]["baseline_rmse"]


@pytest.mark.slow
def test_mixed_precision_computes_in_bfloat16_with_float32_weights_and_outputs(tmp_path):
    keras = pytest.importorskip("keras")
    from click.testing import CliRunner

    from pipeline import sample
    from pipeline.competitions import KEYPOINTS
    from run import cli

    raw = tmp_path / "data" / "raw" / KEYPOINTS.slug
    raw.mkdir(parents=True)
    sample.write_sample(KEYPOINTS, raw, seed=3, sizes=sample.SampleSizes(keypoints_train=24, keypoints_test=4))
    result = CliRunner().invoke(cli, ["--root", str(tmp_path), "--quiet", "all", "--task", "keypoints", "--model",
                                      "kaggle_cnn", "--epochs", "1", "--batch-size", "8", "--precision", "mixed"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    runs = tmp_path / "data" / "runs" / KEYPOINTS.slug
    run_dir = runs / (runs / "latest").read_text().strip()
    model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    assert {w.dtype for w in model.weights} == {"float32"}
    assert any(layer.compute_dtype == "bfloat16" for layer in model.layers)
    assert model.predict(np.zeros((2, 96, 96, 1), np.float32), verbose=0).dtype == np.float32
    assert keras.config.dtype_policy().name == "float32"     # the global policy is restored
