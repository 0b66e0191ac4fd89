import contextlib
import json

import numpy as np
import pytest

from pipeline.training import augment, distribute, train
from pipeline.core.errors import PipelineError
from pipeline.core.hardware import has_bfloat16_units
from pipeline.training.params import resolve
from pipeline.data import splits


def test_validation_split_is_stratified():
    labels = np.repeat(np.arange(4), [40, 30, 20, 10])
    _, val = splits.split_indices(len(labels), 0.2, labels=labels)
    assert np.bincount(labels[val]).tolist() == [8, 6, 4, 2]


class ExhaustedModel:
    def fit(self, *args, **kwargs):
        raise RuntimeError("RESOURCE_EXHAUSTED: OOM when allocating tensor with shape[512,96,96,32]")


def test_device_out_of_memory_suggests_a_smaller_batch():
    with pytest.raises(PipelineError, match="try a smaller --batch-size") as error:
        batches = augment.Batches(np.zeros((4, 8, 8, 1), np.uint8), np.zeros((4, 3), np.float32), 2)
        train._fit(distribute.Placement(contextlib.nullcontext()), ExhaustedModel(), batches,
                   {"epochs": 1, "batch_size": 512}, [], 0)
    assert "--batch-size 512" in str(error.value)


@pytest.mark.slow
def test_same_seed_same_data_same_model(tmp_path):
    from click.testing import CliRunner

    from pipeline.core.competitions import EXPRESSIONS, KEYPOINTS
    from pipeline.cli import cli

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

    from pipeline.data import sample
    from pipeline.core.competitions import KEYPOINTS
    from pipeline.cli import cli

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
    assert json.loads((run_dir / "params.json").read_text())["precision"] == "mixed"   # which one ran


def _train_lenet7(rows, data_seed, **overrides):
    """Train lenet7 for 2 epochs on `rows` generated 48x48 faces, as run.py train does, from seed 0;
    returns (model, batches)."""
    import keras
    from pipeline.bench import _bench_data

    x, labels = _bench_data("expressions", rows, seed=data_seed)
    one_hot = np.eye(7, dtype=np.float32)[labels]
    data = splits.TrainingData(x, one_hot, x[:16], one_hot[:16], labels, labels[:16], classes=tuple(range(7)))
    params = {"model": "lenet7", "augment": "strong", "class_weight": "none", "batch_size": 16, "seed": 0,
              "epochs": 2, "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "schedule": "none",
              "warmup_epochs": 0, "label_smoothing": 0.0, **overrides}
    keras.utils.set_random_seed(0)
    batches = train._batches("expressions", data, params)
    model = train._compiled_model("expressions", data, params, steps_per_epoch=len(batches))
    train._fit(distribute.Placement(contextlib.nullcontext()), model, batches, params, [], 0, verbose=0)
    return model, batches


def test_worker_threads_train_the_same_model_as_one_thread(monkeypatch):
    """A GPU machine draws augmented batches with worker threads: the batches, their order and so the
    trained weights are the same as with one thread (on the CPU, where training is deterministic)."""
    pytest.importorskip("keras")
    from pipeline.core import devices

    weights = {}
    for workers in (1, 3):
        monkeypatch.setattr(devices, "input_workers", lambda: workers)
        model, batches = _train_lenet7(96, data_seed=1)
        assert batches.workers == workers
        weights[workers] = model.get_weights()
    for one, threaded in zip(weights[1], weights[3]):
        np.testing.assert_allclose(one, threaded, rtol=1e-6, atol=1e-7)


def test_several_steps_per_call_train_every_batch_and_the_same_model_as_one(monkeypatch):
    """On the CPU with TensorFlow a compiled call runs several training steps: an epoch whose batch
    count is no multiple of them still trains on every batch, in the same order, to the same weights."""
    keras = pytest.importorskip("keras")
    from pipeline.core import devices

    chosen = devices.steps_per_execution()
    if keras.config.backend() == "tensorflow" and not devices.has_gpu():
        assert chosen > 1
    assert devices.steps_per_execution("mirrored") == devices.steps_per_execution("multiworker") == 1
    weights = {}
    for steps in sorted({1, chosen, 3}):
        monkeypatch.setattr(devices, "steps_per_execution", lambda strategy="none": steps)
        model, batches = _train_lenet7(176, data_seed=2, augment="standard", schedule="cosine",   # 11 batches of 16
                                       warmup_epochs=1)
        assert model.steps_per_execution == steps
        assert int(model.optimizer.iterations) == 2 * len(batches) == 22
        weights[steps] = model.get_weights()
    for steps, trained in weights.items():
        for one, several in zip(weights[1], trained):
            np.testing.assert_allclose(one, several, rtol=1e-5, atol=1e-6, err_msg=f"{steps} steps a call")


def test_the_cpu_feeds_through_keras_queue_with_tf_data_autotuning_off():
    keras = pytest.importorskip("keras")
    from pipeline.core import devices
    from pipeline.training import augment

    if devices.has_gpu():
        pytest.skip("the CPU's setting")
    assert devices.input_workers() == 2
    if keras.config.backend() != "tensorflow":
        pytest.skip("tf.data is the TensorFlow backend's")
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    images = np.zeros((8, 48, 48, 1), np.uint8)
    batches = augment.Batches(images, np.zeros((8, 7), np.float32), 4, workers=devices.input_workers())
    dataset = PyDatasetAdapter(batches, shuffle=False).get_tf_dataset()
    assert dataset.options().autotune.enabled is False


@pytest.mark.slow
def test_device_augmentation_trains_saves_predicts_and_exports(tmp_path):
    keras = pytest.importorskip("keras")
    from click.testing import CliRunner

    from pipeline.data import sample
    from pipeline.core.competitions import EXPRESSIONS
    from pipeline.cli import cli

    raw = tmp_path / "data" / "raw" / EXPRESSIONS.slug
    raw.mkdir(parents=True)
    sample.write_sample(EXPRESSIONS, raw, seed=3, sizes=sample.SampleSizes(expressions=120))
    args = ["--root", str(tmp_path), "--quiet"]
    result = CliRunner().invoke(cli, [*args, "all", "--task", "expressions", "--model", "compact_vgg", "--epochs", "1",
                                      "--batch-size", "16", "--augment", "strong", "--augment-on", "device"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    runs = tmp_path / "data" / "runs" / EXPRESSIONS.slug
    run_dir = runs / (runs / "latest").read_text().strip()
    assert json.loads((run_dir / "params.json").read_text())["augment_on"] == "device"
    model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    assert {"RandomFlip", "RandomErasing"} <= {type(layer).__name__ for layer in model.layers}
    images = np.random.default_rng(0).random((4, 48, 48, 1), dtype=np.float32)
    assert np.array_equal(model.predict(images, verbose=0), model.predict(images, verbose=0))
    assert list(tmp_path.glob("submissions/*.csv"))
    exported = CliRunner().invoke(cli, [*args, "export", "--task", "expressions"])   # checks each format's outputs
    assert exported.exit_code == 0, exported.output + repr(exported.exception)


def test_keypoints_refuse_device_augmentation():
    with pytest.raises(PipelineError, match="keypoints augment on the host"):
        resolve("keypoints", {"augment_on": "device"})
    assert "augment_on" not in resolve("expressions", {})   # host: run names stay as they were
    assert resolve("expressions", {"augment_on": "device"})["augment_on"] == "device"


@pytest.mark.parametrize("name", sorted(__import__("pipeline.models", fromlist=["MODELS"]).MODELS))
def test_every_model_trains_a_step_in_mixed_precision_on_tensorflow(name):
    """--precision mixed on the TensorFlow backend, which refuses to mix bfloat16 and float32 in one op
    (heatmap_keypoints' soft-argmax once did): a step trains, the weights stay float32, and the head
    answers in float32."""
    keras = pytest.importorskip("keras")
    from pipeline.data.splits import TrainingData
    from pipeline.models import INPUT_SHAPES, MODELS
    from pipeline.training.params import resolve

    assert keras.config.backend() == "tensorflow"
    task = MODELS[name].task
    shape = INPUT_SHAPES[task]
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (4, *shape), dtype=np.uint8)
    if task == "keypoints":
        y = rng.uniform(-0.5, 0.5, (4, 30)).astype(np.float32)
        y[::2, 8:] = np.nan   # rows with only some keypoints
        data = TrainingData(x, y, x, y)
    else:
        labels = np.arange(4) % 7
        data = TrainingData(x, np.eye(7, dtype=np.float32)[labels], x, np.eye(7, dtype=np.float32)[labels],
                            labels, labels, classes=tuple(range(7)))
    params = resolve(task, {"model": name, "precision": "mixed", "weights": "none"})
    model = train._compiled_model(task, data, params, steps_per_epoch=1)
    loss = model.train_on_batch(x.astype(np.float32) / 255, data.train_y)
    assert np.isfinite(np.asarray(loss)).all()
    assert {w.dtype for w in model.trainable_weights} == {"float32"}
    assert any(layer.compute_dtype == "bfloat16" for layer in model.layers)
    assert model.predict(x[:2].astype(np.float32) / 255, verbose=0).dtype == np.float32
    assert keras.config.dtype_policy().name == "float32"
    keras.backend.clear_session()


@pytest.mark.parametrize("flags, gpu, backend, expected", [
    ({"avx2", "avx512f", "avx512_bf16"}, False, "tensorflow", "mixed"),
    ({"avx2", "amx_tile", "amx_bf16"}, False, "tensorflow", "mixed"),
    ({"avx2", "fma"}, False, "tensorflow", "float32"),            # no bfloat16 units: float32
    ({"avx512_bf16"}, True, "tensorflow", "float32"),              # a GPU: float32 (no faster there)
    ({"avx512_bf16"}, False, "jax", "float32"),                    # measured on TensorFlow only
])
def test_precision_auto_takes_bfloat16_only_where_the_cpu_has_it(monkeypatch, flags, gpu, backend, expected):
    from pipeline.training import params

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)   # the flags alone decide, not this CPU's cap
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(params, "has_bfloat16_units", lambda: has_bfloat16_units(flags))
    monkeypatch.setattr(params, "nvidia_gpu_present", lambda: gpu)
    monkeypatch.setenv("KERAS_BACKEND", backend)
    resolved = resolve("expressions", {})
    assert resolved.get("precision", "float32") == expected
    assert ("precision" in resolved) == (expected == "mixed")   # float32 runs keep their old names
    # fast spends bfloat16's speed on a wider network; float32 keeps the one that fits its hour
    assert resolved["model"] == {"mixed": "compact_vgg_wide", "float32": "compact_vgg"}[expected]
    assert resolve("expressions", {"precision": "float32"}).get("precision") is None


def test_precision_auto_keeps_float32_for_a_model_that_is_slower_in_bfloat16(monkeypatch):
    from pipeline.training import params

    monkeypatch.setattr(params, "auto_precision", lambda: "mixed")   # a CPU with bfloat16 units
    assert "precision" not in resolve("expressions", {}, "reference")    # mini_xception: float32
    assert resolve("expressions", {"model": "compact_vgg"}, "reference")["precision"] == "mixed"
    assert resolve("expressions", {"precision": "mixed"}, "reference")["precision"] == "mixed"   # asked for


@pytest.mark.slow
def test_tensorboard_logs_each_epochs_loss_and_validation_score_in_the_run_folder(project):
    from click.testing import CliRunner
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from pipeline.cli import cli
    from pipeline.core.competitions import KEYPOINTS

    args = ["--root", str(project), "all", "--task", "keypoints", "--epochs", "2", "--batch-size", "8", "--tensorboard"]
    for attempt in range(2):   # a forced second run logs afresh instead of appending
        result = CliRunner().invoke(cli, [*args, *(["--force"] if attempt else [])])
        assert result.exit_code == 0, result.output + repr(result.exception)
    runs = project / "data" / "runs" / KEYPOINTS.slug
    logs = runs / (runs / "latest").read_text().strip() / "tensorboard"
    steps = {}
    for side, tag in (("train", "epoch_loss"), ("validation", "epoch_rmse")):
        events = EventAccumulator(str(logs / side))
        events.Reload()
        steps[side] = [event.step for event in events.Tensors(tag)]
    assert steps == {"train": [0, 1], "validation": [0, 1]}
