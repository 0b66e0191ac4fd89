import numpy as np
import pytest

from pipeline import train
from pipeline.errors import PipelineError


def test_options_come_from_the_command_line_then_the_model_recipe_then_defaults():
    params = train.resolve_params("keypoints", {"model": "kaggle_cnn", "epochs": 5, "lr": None})
    assert params["epochs"] == 5                       # given
    assert params["batch_size"] == 64 and params["loss"] == "rmse"   # the reference recipe
    assert params["lr"] == 1e-3 and params["augment"] is True        # defaults
    assert "ferplus_target" not in params and "weights" not in params  # not this task's or model's


def test_model_of_the_other_task_is_refused():
    with pytest.raises(PipelineError, match="kaggle_cnn is a keypoints model"):
        train.resolve_params("expressions", {"model": "kaggle_cnn"})


def test_validation_split_is_stratified():
    labels = np.repeat(np.arange(4), [40, 30, 20, 10])
    _, val = train.split_indices(len(labels), 0.2, seed=0, labels=labels)
    assert np.bincount(labels[val]).tolist() == [8, 6, 4, 2]


class ExhaustedModel:
    def fit(self, *args, **kwargs):
        raise RuntimeError("RESOURCE_EXHAUSTED: OOM when allocating tensor with shape[512,96,96,32]")


def test_device_out_of_memory_suggests_a_smaller_batch():
    with pytest.raises(PipelineError, match="try a smaller --batch-size") as error:
        train._fit(ExhaustedModel(), None, None, {"epochs": 1, "batch_size": 512}, [], 0)
    assert "--batch-size 512" in str(error.value)
