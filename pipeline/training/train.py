"""train: fit one model on the scaled arrays with validation early stopping; fill its run folder.

The run folder (data/runs/<slug>/<model>-<hash>/) holds model.keras (best weights), predictor.json
(what predict needs besides the model: the keypoint scaling or the class names, and the input
shape), history.csv, curve.png, params.json and metrics.json. Keypoints train with a masked loss,
so rows with missing targets still teach the keypoints they have. Expressions validate on a
stratified split of Training, or on PublicTest (`validation="public-test"`), so that all of
Training trains; PrivateTest is never used here.
"""
import contextlib
import importlib.util
import shutil
import time

import keras
import numpy as np
import pandas as pd

from pipeline.core import devices, threads
from pipeline.core.competitions import VALIDATION_METRIC
from pipeline.core.errors import PipelineError
from pipeline.core.fileio import atomic_path, explain, write_json, write_text
from pipeline.core.layout import BACKUP, CURVE, HISTORY, METRICS, MODEL, PARAMS, PREDICTOR, TENSORBOARD
from pipeline.data.splits import load_training_data
from pipeline.inference.rundir import predictor_description
from pipeline.models import build_model
from pipeline.models.losses import LOSSES
from pipeline.reporting import plots
from pipeline.training import augment, distribute, heap, optimizers, resume
from pipeline.training.evaluate import final_metrics
from pipeline.training.validation import Validation, expression_scores, keypoint_scores


def run(competition, processed, run_dir, params, echo=print, resume_training=False, progress=True):
    """Train per `params` (from recipes.resolve) on data/processed/<slug>/ into `run_dir`; with
    `progress`, a line per epoch (Keras's). In a fresh process (its lines printed) when the model
    wants TensorFlow's threads laid out otherwise than they already run here (core/threads.py)."""
    layout = threads.layout_for(params["model"], params.get("precision", "float32"), params.get("strategy", "none"))
    if threads.use(layout):
        return _run(competition, processed, run_dir, params, echo, resume_training, progress)
    echo(f"training {params['model']} in a fresh process: it runs with {threads.describe(layout)}, "
         f"this one's TensorFlow with {threads.describe(threads.running())}")
    return threads.call(layout, _run, competition, processed, run_dir, params, print, resume_training, progress)


def _run(competition, processed, run_dir, params, echo, resume_training, progress):
    if params.get("tensorboard") and importlib.util.find_spec("tensorboard") is None:
        raise PipelineError("--tensorboard needs the tensorboard package: pip install tensorboard")
    keras.utils.set_random_seed(params["seed"])
    task = competition.task
    data = load_training_data(task, processed, params)
    place = distribute.placement(params.get("strategy", "none"), params["batch_size"])
    batches = _batches(task, data, params, shard=(place.worker, place.workers))
    score = _scorer(task, data)

    backup = run_dir / BACKUP
    with place.scope:   # the model's variables live on every replica
        restored = resume.load(backup) if resume_training else None
        if restored:
            model, state = restored
            model.jit_compile = devices.jit_compile()
            model.steps_per_execution = devices.steps_per_execution(params.get("strategy", "none"))
            batches.set_epoch(state["epoch"])   # the same order and draws as an unbroken run
            echo(f"resuming {run_dir.name} after epoch {state['epoch']}")
        else:
            if resume_training:
                echo(f"nothing to resume in {backup}; training from the start")
            resume.discard(backup)
            shutil.rmtree(run_dir / TENSORBOARD, ignore_errors=True)   # a new start logs afresh
            state = None
            model = _compiled_model(task, data, params, steps_per_epoch=len(batches))

    run_dir.mkdir(parents=True, exist_ok=True)
    monitor, mode = VALIDATION_METRIC[task]
    stopping = keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=params["patience"],
                                             restore_best_weights=True)
    if progress:
        fold = f" fold {params['fold'] + 1}/{params['folds']}" if "fold" in params else ""
        echo(f"training {params['model']}{fold} ({model.count_params():,} weights) on {len(data.train_x)} rows, "
             f"validating on {len(data.val_x)}, {devices.describe()}")
    started = time.perf_counter()
    with resume.stop_on_signals(echo) as stop_request:
        checkpoint = resume.Checkpoint(backup, stopping, stop_request, state, agree=place.any_signal)
        callbacks = [Validation(data.val_x, score, params["batch_size"]), heap.KeepBuffers(), stopping,
                     *optimizers.schedule_callbacks(params, monitor, mode), checkpoint]
        if params.get("tensorboard"):   # after Validation, so that its scores are logged too
            callbacks.insert(1, keras.callbacks.TensorBoard(log_dir=str(run_dir / TENSORBOARD)))
        _fit(place, model, batches, params, callbacks, state["epoch"] if state else 0, verbose=2 if progress else 0)
    seconds = time.perf_counter() - started

    history = checkpoint.history
    metrics = final_metrics(task, [model], data, params)
    metrics.update({"epochs": len(history["loss"]), "best_epoch": stopping.best_epoch + 1,
                    "train_seconds": round(seconds, 1), "parameters": int(model.count_params()),
                    "train_rows": int(len(data.train_x)), "val_rows": int(len(data.val_x)),
                    "validation": params.get("validation", "split"), "replicas": place.replicas,
                    "workers": place.workers})
    _save_run(run_dir, model, history, params, metrics, task, data)
    resume.discard(backup)   # model.keras holds the best weights now
    return metrics


def _batches(task, data, params, shard=(0, 1)):
    config = augment.STRENGTHS[params["augment"]]
    on_host = config.active and params.get("augment_on", "host") == "host"   # device: _compiled_model's layers
    augmenter = None
    if on_host and task == "keypoints":   # targets move to pixels and back around the warp
        augmenter = augment.keypoint_augmenter(config, to_pixels=data.scaling.inverse_transform,
                                               to_targets=data.scaling.transform)
    elif on_host:
        augmenter = augment.image_augmenter(config)
    weights = None
    if task == "expressions" and params["class_weight"] != "none":
        by_class = optimizers.class_weights(data.train_labels, len(data.classes), params["class_weight"])
        weights = np.array([by_class[c] for c in data.train_labels], np.float32)
    return augment.Batches(data.train_x, data.train_y, params["batch_size"], augment=augmenter,
                           shuffle=True, seed=params["seed"], sample_weight=weights, shard=shard,
                           workers=devices.input_workers())


def _scorer(task, data):
    if task == "keypoints":
        return lambda predicted: keypoint_scores(predicted, data.val_y, data.scaling)
    return lambda probabilities: expression_scores(probabilities, data.val_y, data.val_labels)


def _compiled_model(task, data, params, steps_per_epoch):
    with mixed_precision(params.get("precision", "float32")):   # the heads stay float32 (models/__init__.py)
        model = build_model(params["model"], data.train_x.shape[1:], data.train_y.shape[1],
                            weights=params.get("weights"))
    if params.get("augment_on", "host") == "device":
        model = augment.on_device(model, augment.STRENGTHS[params["augment"]], params["seed"])
    rate = optimizers.learning_rate(params, steps_per_epoch)
    if task == "keypoints":
        loss, metrics = LOSSES[params["loss"]], None
    else:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=params["label_smoothing"])
        metrics = ["accuracy"]
    model.compile(optimizer=optimizers.make_optimizer(params["optimizer"], rate, params["weight_decay"]),
                  loss=loss, metrics=metrics, jit_compile=devices.jit_compile(),
                  steps_per_execution=devices.steps_per_execution(params.get("strategy", "none")))
    return model


@contextlib.contextmanager
def mixed_precision(precision):
    """For precision "mixed", layers built inside compute in bfloat16 and keep float32 weights
    (Keras's "mixed_bfloat16": no loss scaling needed, unlike float16); yields whether it is on.
    Worth it on GPUs with bfloat16 units; on a CPU without them it is slower."""
    if precision == "float32":
        yield False
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        yield True
    finally:
        keras.config.set_dtype_policy(previous)


def _fit(place, model, batches, params, callbacks, first_epoch, verbose=2):
    try:
        place.fit(model, batches, epochs=params["epochs"], initial_epoch=first_epoch, callbacks=callbacks,
                  verbose=verbose)
    except OSError as error:   # writing the epoch checkpoint: disk full, permissions
        raise explain(error, getattr(error, "filename", None) or "the run folder") from None
    except Exception as error:  # the backends raise their own types for exhausted device memory
        text = str(error)
        if "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower():
            raise PipelineError(f"the device ran out of memory with --batch-size {params['batch_size']}; "
                                "try a smaller --batch-size") from None
        raise


def _save_run(run_dir, model, history, params, metrics, task, data):
    frame = pd.DataFrame(history)
    frame.insert(0, "epoch", np.arange(1, len(frame) + 1))
    write_text(run_dir / HISTORY, frame.to_csv(index=False))
    plots.plot_history(frame, run_dir / CURVE, title=params["model"])
    with atomic_path(run_dir / MODEL, suffix=".keras") as tmp:
        model.save(tmp)
    write_json(run_dir / PREDICTOR, predictor_description(task, data.train_x.shape[1:], data.classes, data.scaling))
    device = devices.describe()
    if keras.config.backend() == "tensorflow":
        device += f", {threads.describe(threads.running())}"
    write_json(run_dir / PARAMS, {**params, "precision": params.get("precision", "float32"), "device": device,
                                  "deterministic": devices.deterministic()})
    write_json(run_dir / METRICS, metrics)
