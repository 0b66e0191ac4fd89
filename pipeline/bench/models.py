"""python -m pipeline.bench models: every model of a task on the same small budget and data."""
import time

import click
import numpy as np

from pipeline.models import INPUT_SHAPES, MODELS, build_model

from pipeline.bench import HALF, _bench_data, cli


def _val_metric(task, model, x, y):
    predicted = model.predict(x, batch_size=64, verbose=0)
    if task == "keypoints":
        return "RMSE px", float(np.sqrt(np.nanmean((predicted - y) ** 2)) * HALF)
    return "accuracy", float(np.mean(predicted.argmax(1) == y))


def train_one(name, task, data, epochs, batch_size, seed, augment):
    import keras  # this benchmark's own: `bench --help` loads none of them

    from pipeline.training import augment as aug  # this benchmark's own: `bench --help` loads none of them
    from pipeline.training import heap  # this benchmark's own: `bench --help` loads none of them
    from pipeline.models.losses import masked_mse  # this benchmark's own: `bench --help` loads none of them

    (x_train, y_train), (x_val, y_val) = data
    keras.utils.set_random_seed(seed)
    model = build_model(name, INPUT_SHAPES[task], 30 if task == "keypoints" else 7, weights="none")
    model.compile(keras.optimizers.Adam(1e-3),
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
