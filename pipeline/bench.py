"""Benchmarks that print measured numbers, never run by the test suite.

    python -m pipeline.bench models --task both --epochs 5 --rows 400
        trains every model of a task for the same small budget, with the same seed and data,
        and prints one table: parameters, epochs run, wall time, validation RMSE (px) or accuracy.
    python -m pipeline.bench heap
        times training steps with the malloc thresholds tf.data's generator sets, then with
        heap.KeepBuffers raising them again (TensorFlow backend on glibc).
    python -m pipeline.bench augment
        times augmentation of a batch against one training step of the default model: the ratio
        says whether augmentation on the CPU could slow training down.
"""
import time

import click
import numpy as np

from pipeline import sample
from pipeline.models import DEFAULT_MODEL, INPUT_SHAPES, MODELS, build_model

HALF = 48.0   # keypoint targets are scaled as (px - 48) / 48, the pipeline's "image" range


def _bench_data(task, rows, seed):
    """(x, y) for `task` from the built-in sample generator: images (rows, h, w, 1) float32 in
    [0, 1]; keypoints scaled to [-1, 1] (rows, 30), or FER2013 labels (rows,)."""
    rng = np.random.default_rng(seed)
    if task == "keypoints":
        images, keypoints = sample.keypoints_arrays(rows, rng)
        y = ((keypoints - HALF) / HALF).astype(np.float32)
    else:
        images, y, _ = sample.expressions_arrays(rows, rng)
    return (images.astype(np.float32) / 255)[..., None], y


def _val_metric(task, model, x, y):
    predicted = model.predict(x, batch_size=64, verbose=0)
    if task == "keypoints":
        return "RMSE px", float(np.sqrt(np.nanmean((predicted - y) ** 2)) * HALF)
    return "accuracy", float(np.mean(predicted.argmax(1) == y))


def train_one(name, task, data, epochs, batch_size, seed, augment):
    import keras

    from pipeline import augment as aug
    from pipeline import heap, recipes
    from pipeline.losses import masked_mse

    (x_train, y_train), (x_val, y_val) = data
    keras.utils.set_random_seed(seed)
    model = build_model(name, INPUT_SHAPES[task], 30 if task == "keypoints" else 7, weights="none")
    recipe = MODELS[name].recipe
    model.compile(recipes.make_optimizer("adam", recipe.get("learning_rate", 1e-3)),
                  masked_mse if task == "keypoints" else "sparse_categorical_crossentropy")
    augmenter = None
    if augment:
        to_pixels, to_targets = (lambda t: t * HALF + HALF), (lambda p: (p - HALF) / HALF)
        augmenter = (aug.keypoint_augmenter(to_pixels=to_pixels, to_targets=to_targets)
                     if task == "keypoints" else aug.image_augmenter())
    batches = aug.Batches(x_train, y_train, batch_size, augment=augmenter, seed=seed)
    stop = keras.callbacks.EarlyStopping(patience=max(2, epochs // 3), restore_best_weights=True)

    started = time.perf_counter()
    history = model.fit(batches, validation_data=(x_val, y_val), epochs=epochs, verbose=0,
                        callbacks=[heap.KeepBuffers(), stop])
    seconds = time.perf_counter() - started
    metric, value = _val_metric(task, model, x_val, y_val)
    params = model.count_params()
    keras.backend.clear_session()
    return {"model": name, "params": params, "epochs": len(history.history["loss"]),
            "seconds": seconds, "metric": metric, "value": value}


def _table(rows):
    header = f"{'model':<18}{'params':>12}{'epochs':>8}{'wall s':>9}{'s/epoch':>9}  val metric"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r['model']:<18}{r['params']:>12,}{r['epochs']:>8}{r['seconds']:>9.1f}"
                     f"{r['seconds'] / r['epochs']:>9.2f}  {r['metric']} {r['value']:.3f}")
    return "\n".join(lines)


@click.group()
def cli():
    """Benchmarks; each prints a table of measurements."""


@cli.command("models")
@click.option("--task", type=click.Choice(["keypoints", "expressions", "both"]), default="both")
@click.option("--epochs", default=5, show_default=True, help="Budget per model (early stopping may end sooner).")
@click.option("--rows", default=400, show_default=True, help="Synthetic rows per task; 20% validate.")
@click.option("--batch-size", default=32, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--augment/--no-augment", default=False, show_default=True)
@click.option("--model", "only", multiple=True, help="Bench only these models (repeatable).")
def models_command(task, epochs, rows, batch_size, seed, augment, only):
    """Train every model of a task for the same budget on the same data and compare."""
    for this_task in (("keypoints", "expressions") if task == "both" else (task,)):
        x, y = _bench_data(this_task, rows, seed)
        cut = int(len(x) * 0.8)
        data = (x[:cut], y[:cut]), (x[cut:], y[cut:])
        names = [n for n, s in MODELS.items() if s.task == this_task and (not only or n in only)]
        results = []
        for name in names:
            click.echo(f"  {this_task}: training {name} ...", err=True)
            results.append(train_one(name, this_task, data, epochs, batch_size, seed, augment))
        click.echo(f"\n{this_task}: {cut} training / {len(x) - cut} validation rows, "
                   f"{epochs} epochs max, batch {batch_size}, seed {seed}, "
                   f"augment {'on' if augment else 'off'}")
        click.echo(_table(results))


@cli.command("augment")
@click.option("--batch-size", default=64, show_default=True)
@click.option("--repeats", default=20, show_default=True)
def augment_command(batch_size, repeats):
    """Augmentation time per batch against one training step of each task's default model."""
    import keras

    from pipeline.augment import augment_image_batch, augment_keypoint_batch

    for task in ("keypoints", "expressions"):
        x, y = _bench_data(task, batch_size, seed=0)
        rng = np.random.default_rng(0)
        if task == "keypoints":
            pixels = y * HALF + HALF
            augment = lambda: augment_keypoint_batch(x, pixels, rng)  # noqa: E731
        else:
            augment = lambda: augment_image_batch(x, rng)  # noqa: E731
        augment_ms = _best_ms(augment, repeats)

        model = build_model(DEFAULT_MODEL[task], INPUT_SHAPES[task], 30 if task == "keypoints" else 7)
        model.compile("adam", "mse" if task == "keypoints" else "sparse_categorical_crossentropy")
        step_ms = _best_ms(lambda: model.train_on_batch(x, y), max(3, repeats // 4))
        keras.backend.clear_session()
        click.echo(f"{task:<12} batch {batch_size}: augment {augment_ms:7.1f} ms, "
                   f"{DEFAULT_MODEL[task]} train step {step_ms:7.1f} ms, ratio {augment_ms / step_ms:.2f}")


@cli.command("heap")
@click.option("--rows", default=1024, show_default=True)
@click.option("--epochs", default=3, show_default=True, help="Per setting; the first is a warm-up.")
def heap_command(rows, epochs):
    """Training step time of the default expressions model, tf.data's malloc settings vs KeepBuffers."""
    import keras

    from pipeline import augment as aug
    from pipeline import heap

    if not heap.available() or keras.config.backend() != "tensorflow":
        raise click.ClickException("needs the TensorFlow backend on glibc")

    class TfDataThresholds(keras.callbacks.Callback):   # what the generator's "memory patch" sets
        def on_train_batch_begin(self, batch, logs=None):
            heap.set_thresholds(heap.TF_DATA_THRESHOLD)

    x, y = _bench_data("expressions", rows, seed=0)
    model = build_model(DEFAULT_MODEL["expressions"], INPUT_SHAPES["expressions"], 7)
    model.compile("adam", "sparse_categorical_crossentropy")
    batches = aug.Batches(x, y, 32, seed=0)
    step_ms = {}
    for name, callback in (("tf.data thresholds", TfDataThresholds()), ("KeepBuffers", heap.KeepBuffers())):
        model.fit(batches, epochs=1, verbose=0, shuffle=False, callbacks=[callback])   # warm-up
        started = time.perf_counter()
        model.fit(batches, epochs=epochs - 1, verbose=0, shuffle=False, callbacks=[callback])
        step_ms[name] = 1000 * (time.perf_counter() - started) / ((epochs - 1) * len(batches))
        click.echo(f"{name:<20} {step_ms[name]:7.1f} ms per step of 32")
    click.echo(f"speed-up {step_ms['tf.data thresholds'] / step_ms['KeepBuffers']:.2f}x")


def _best_ms(function, repeats):
    function()   # warm up (graph tracing, caches)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return 1000 * min(times)


if __name__ == "__main__":
    cli()
