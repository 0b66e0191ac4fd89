"""train: fit one model on the scaled arrays with validation early stopping; fill its run folder.

The run folder (data/runs/<slug>/<model>-<hash>/) holds model.keras (best weights), history.csv,
curve.png, params.json and metrics.json. Keypoints train with a masked loss, so rows with missing
targets still teach the keypoints they have; expressions split the validation set stratified.
"""
import time

import numpy as np

from . import scale
from .errors import PipelineError
from .fileio import atomic_path, explain, load_arrays, read_json, write_json, write_text

MODEL = "model.keras"
HISTORY = "history.csv"
CURVE = "curve.png"
PARAMS = "params.json"
METRICS = "metrics.json"
BACKUP = "backup"

# Used where neither the command line nor the model's own RECIPE says otherwise.
DEFAULTS = {
    "epochs": 60, "batch_size": 32, "seed": 0, "val_fraction": 0.15, "patience": 10,
    "augment": True, "optimizer": "adam", "lr": 1e-3, "schedule": "none", "loss": "mse",
    "ferplus_target": "dist", "class_weight": "none", "weights": "imagenet",
}
RECIPE_KEYS = {"loss": "loss", "optimizer": "optimizer", "learning_rate": "lr",
               "batch_size": "batch_size", "early_stopping_patience": "patience"}
KEYPOINT_ONLY = ("loss",)
EXPRESSION_ONLY = ("ferplus_target", "class_weight")


def outputs(run_dir):
    return [run_dir / name for name in (MODEL, HISTORY, CURVE, PARAMS, METRICS)]


def resolve_params(task, given):
    """Complete the command line's options: unset ones come from the model's RECIPE, then DEFAULTS.

    Only the options that matter for this task (and model) are kept, so they alone decide the cache.
    """
    from .models import DEFAULT_MODEL, get_spec

    given = {k: v for k, v in given.items() if v is not None}
    model = given.get("model") or DEFAULT_MODEL[task]
    spec = get_spec(model)
    if spec.task != task:
        raise PipelineError(f"--model {model} is a {spec.task} model; for {task} choose one of: "
                            + ", ".join(sorted(n for n, s in _models().items() if s.task == task)))
    recipe = {RECIPE_KEYS[k]: v for k, v in spec.recipe.items() if k in RECIPE_KEYS}
    params = {**DEFAULTS, **recipe, **given, "model": model}
    drop = EXPRESSION_ONLY if task == "keypoints" else KEYPOINT_ONLY
    if model != "vgg16_transfer":
        drop += ("weights",)
    return {k: v for k, v in sorted(params.items()) if k not in drop}


def _models():
    from .models import MODELS

    return MODELS


def split_indices(n, val_fraction, seed, labels=None):
    """Train and validation row indices; stratified by `labels` when given."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(n)
    counts = np.bincount(labels) if labels is not None else None
    stratify = labels if counts is not None and counts[counts > 0].min() >= 2 else None
    return train_test_split(rows, test_size=val_fraction, random_state=seed, stratify=stratify)


def run(competition, processed, run_dir, params, echo=print, resume_training=False):
    """Train per `params` (from resolve_params) on data/processed/<slug>/ into `run_dir`."""
    import keras

    from . import augment, devices, heap, recipes, resume
    from .models import build_model

    keras.utils.set_random_seed(params["seed"])
    data = load_arrays(processed / scale.ARRAYS)
    meta = read_json(processed / scale.META)
    task = competition.task
    x = data["train_x"]
    if task == "keypoints":
        scaler = scale.load_scaler(processed / scale.SCALER)
        y, labels, n_outputs = data["train_y"], None, data["train_y"].shape[1]
    else:
        labels = data["train_labels"]
        n_outputs = len(meta["classes"])
        soft = params["ferplus_target"] == "dist" and meta["summary"]["labels"] == "ferplus"
        y = data["train_distribution"] if soft else np.eye(n_outputs, dtype=np.float32)[labels]
    train_rows, val_rows = split_indices(len(x), params["val_fraction"], params["seed"], labels)

    backup = run_dir / BACKUP
    restored = resume.load(backup) if resume_training else None
    if restored:
        model, state = restored
        model.jit_compile = devices.jit_compile()
        echo(f"resuming {run_dir.name} after epoch {state['epoch']}")
    else:
        if resume_training:
            echo(f"nothing to resume in {backup}; training from the start")
        resume.discard(backup)
        state = None
        model = build_model(params["model"], x.shape[1:], n_outputs, weights=params.get("weights"))
        model.compile(
            optimizer=recipes.make_optimizer(params["optimizer"], params["lr"]),
            loss=_loss(task, params),
            metrics=["accuracy"] if task == "expressions" else None,
            jit_compile=devices.jit_compile(),
        )
    first_epoch = state["epoch"] if state else 0
    augmenter = None
    if params["augment"] and task == "keypoints":   # targets move to pixels and back around the warp
        augmenter = augment.keypoint_augmenter(to_pixels=scaler.inverse_transform, to_targets=scaler.transform)
    elif params["augment"]:
        augmenter = augment.image_augmenter()
    weights = None
    if task == "expressions" and params["class_weight"] != "none":
        by_class = recipes.class_weights(labels[train_rows], n_outputs, params["class_weight"])
        weights = np.array([by_class[c] for c in labels[train_rows]], np.float32)
    batches = augment.Batches(x[train_rows], y[train_rows], params["batch_size"], augment=augmenter,
                              shuffle=True, seed=params["seed"], sample_weight=weights)
    batches.epoch, batches._order = first_epoch, batches._order_for(first_epoch)   # same order as unbroken

    run_dir.mkdir(parents=True, exist_ok=True)
    stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=params["patience"],
                                             restore_best_weights=True)
    echo(f"training {params['model']} ({model.count_params():,} weights) on {len(train_rows)} rows, "
         f"validating on {len(val_rows)}, {devices.describe()}")
    started = time.perf_counter()
    with resume.stop_on_signals(echo) as stop_request:
        checkpoint = resume.Checkpoint(backup, stopping, batches, stop_request, state)
        schedule = recipes.schedule_callbacks(params["schedule"], params["lr"], params["epochs"], params["patience"])
        callbacks = [heap.KeepBuffers(), stopping, *schedule, checkpoint]
        _fit(model, batches, (x[val_rows], y[val_rows]), params, callbacks, first_epoch)
    seconds = time.perf_counter() - started
    history = checkpoint.history

    if task == "keypoints":
        metrics = keypoint_metrics(model, scaler, x, y, train_rows, val_rows, params["batch_size"])
    else:
        metrics = expression_metrics(model, x, labels, train_rows, val_rows, params["batch_size"])
    epochs = len(history["loss"])
    best = int(np.argmin(history["val_loss"])) + 1
    metrics.update({"epochs": epochs, "best_epoch": best, "train_seconds": round(seconds, 1),
                    "parameters": int(model.count_params()), "train_rows": int(len(train_rows)),
                    "val_rows": int(len(val_rows))})
    _save_run(run_dir, model, history, params, metrics)
    resume.discard(backup)   # model.keras holds the best weights now
    return metrics


def _loss(task, params):
    from .losses import LOSSES

    if task == "keypoints":
        return LOSSES[params["loss"]]
    return "categorical_crossentropy"


def _fit(model, batches, validation, params, callbacks, first_epoch):
    try:
        # Batches shuffles itself from (seed, epoch); Keras's own shuffle draws on the global RNG,
        # which a resumed run cannot replay.
        model.fit(batches, validation_data=validation, epochs=params["epochs"], shuffle=False,
                  initial_epoch=first_epoch, callbacks=callbacks, verbose=2)
    except OSError as error:   # writing the epoch checkpoint: disk full, permissions
        raise explain(error, getattr(error, "filename", None) or "the run folder") from None
    except Exception as error:  # the backends raise their own types for exhausted device memory
        text = str(error)
        if "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower():
            raise PipelineError(f"the device ran out of memory with --batch-size {params['batch_size']}; "
                                "try a smaller --batch-size") from None
        raise


def keypoint_metrics(model, scaler, x, y, train_rows, val_rows, batch_size):
    """Validation RMSE in pixels over present targets, and the same for predicting training means."""
    truth = scaler.inverse_transform(y[val_rows])
    predicted = scaler.inverse_transform(model.predict(x[val_rows], batch_size=batch_size, verbose=0))
    means = np.nanmean(scaler.inverse_transform(y[train_rows]), axis=0)
    present = ~np.isnan(truth)
    rmse = lambda guess: float(np.sqrt(np.mean((guess - truth)[present] ** 2)))  # noqa: E731
    return {"val_rmse": rmse(predicted), "baseline_rmse": rmse(np.broadcast_to(means, truth.shape))}


def expression_metrics(model, x, labels, train_rows, val_rows, batch_size):
    """Validation accuracy, and the accuracy of always answering the most common training class."""
    predicted = model.predict(x[val_rows], batch_size=batch_size, verbose=0).argmax(axis=1)
    majority = np.bincount(labels[train_rows]).argmax()
    return {"val_accuracy": float(np.mean(predicted == labels[val_rows])),
            "majority_accuracy": float(np.mean(labels[val_rows] == majority)),
            "majority_class": int(majority)}


def _save_run(run_dir, model, history, params, metrics):
    import pandas as pd

    from . import report

    frame = pd.DataFrame(history)
    frame.insert(0, "epoch", np.arange(1, len(frame) + 1))
    write_text(run_dir / HISTORY, frame.to_csv(index=False))
    report.plot_history(frame, run_dir / CURVE, title=params["model"])
    with atomic_path(run_dir / MODEL, suffix=".keras") as tmp:
        model.save(tmp)
    write_json(run_dir / PARAMS, params)
    write_json(run_dir / METRICS, metrics)

