"""python -m pipeline.bench train: training images/s of each task's model, three ways.

1. input path: `run.py train`'s own feed, augment.Batches with the recipe's augmentation drawn per
   batch on the CPU (by worker threads on a GPU machine), as model.fit sees it;
2. in memory: the same batches augmented beforehand, fed to model.fit through the same feed with
   nothing left to do per batch (the model's own speed: no input work);
3. jax: the input path again, under KERAS_BACKEND=jax (in a process of its own; skipped when JAX
   is already the backend).

`input_efficiency` = (1) / (2): how close the input path keeps training to the model's own speed,
the mean of the ratios of timings taken side by side, with its 95% confidence interval.
With `--augment-on device` the input path feeds plain batches to the model with augmentation layers
in front (a GPU augments them itself); (2) stays the plain model's speed.
Each images/s figure is the median of `repeats` timings taken in turn (input path, in memory, input
path, ...), after a warm-up epoch of each (tracing, compilation), with the recipe's model and batch size,
on the same generated faces. `--precision both` times float32 and mixed precision one after the other.
"""
import functools
import json
import os
import statistics
import subprocess
import sys
import time

import click
import numpy as np

from pipeline.core.recipes import DEFAULT_RECIPE, RECIPES, default

from pipeline.bench import _bench_data, cli, interval
from pipeline.core import threads

TASKS = ("keypoints", "expressions")
PRECISIONS = ("float32", "mixed")


def _setup(task, rows, recipe=DEFAULT_RECIPE, precision="float32", augment_on="host", model=None):
    from pipeline.data import scale, splits  # this benchmark's own: `bench --help` loads none of them
    from pipeline.training import train  # this benchmark's own: `bench --help` loads none of them
    from pipeline.training.params import resolve  # this benchmark's own: `bench --help` loads none of them

    # The model named, else the recipe's own, in either precision (not the recipe's mixed_model), so
    # both precisions compare one network.
    model = model or default("model", task, recipe)
    params = resolve(task, {"model": model, "precision": precision, "augment_on": augment_on}, recipe)
    x, y = _bench_data(task, rows, seed=0, as_bytes=True)   # bytes until the batch, as run.py train
    if task == "keypoints":
        scaling = scale.KeypointScaling((0.0,) * 30, (96.0,) * 30)   # (px - 48) / 48, as _bench_data
        data = splits.TrainingData(x, y, x[:64], y[:64], scaling=scaling)
    else:
        one_hot = np.eye(7, dtype=np.float32)[y]
        data = splits.TrainingData(x, one_hot, x[:64], one_hot[:64], y, y[:64], classes=tuple(range(7)))
    batches = train._batches(task, data, params)
    model = train._compiled_model(task, data, params, steps_per_epoch=len(batches))
    return params, data, batches, model


def _seconds(fit, epochs):
    started = time.perf_counter()
    fit(epochs)
    return time.perf_counter() - started


def measure(task, rows, epochs, in_memory=True, repeats=1, recipe=DEFAULT_RECIPE, precision="float32",
            augment_on="host"):
    """{"input_path": images/s, "in_memory": images/s, ...} for `task`'s model under `recipe`."""
    from pipeline.training import augment, feed, heap, train  # this benchmark's own: `bench --help` loads none of them

    params, data, batches, model = _setup(task, rows, recipe, precision, augment_on)
    seen = len(batches) * params["batch_size"]
    # Both ways with run.py train's KeepBuffers: without it, once tf.data's generator has run, every
    # later fit in this process (the in-memory one too) pays a page fault per fresh buffer.
    callbacks = [heap.KeepBuffers()]

    def fitting(model, batches):   # as run.py train feeds them (training/feed.py)
        fed, needed = feed.for_fit(batches)
        return lambda n: model.fit(fed, epochs=n, shuffle=False, verbose=0, callbacks=[*needed, *callbacks])
    ways = {"input_path": fitting(model, batches)}
    if in_memory:
        drawn = [batches[i] for i in range(len(batches))]
        x, y = np.concatenate([b[0] for b in drawn]), np.concatenate([b[1] for b in drawn])
        plain = model if augment_on == "host" else train._compiled_model(
            task, data, {**params, "augment_on": "host"}, steps_per_epoch=len(batches))
        # through the same feed as the input path, with nothing left to do per batch: plain arrays
        # would go through tf.data with autotuning on, whose 2 s stalls at some epochs' ends
        # (core/devices.py input_workers) would time the feed, not the model
        ready = augment.Batches(x, y, params["batch_size"], shuffle=False, workers=batches.workers)
        ways["in_memory"] = fitting(plain, ready)
    for fit in ways.values():
        fit(1)   # warm-up: tracing and compilation
    times = {way: [] for way in ways}
    for _ in range(repeats):   # in turn, so a slow spell of the machine touches every way alike
        for way, fit in ways.items():
            times[way].append(_seconds(fit, epochs))
    result = {way: seen * epochs / statistics.median(seconds) for way, seconds in times.items()}
    if in_memory:   # each timing beside its neighbour of the other way: a slow spell touches both
        result["efficiencies"] = [ready / fed for fed, ready in zip(times["input_path"], times["in_memory"])]
    return {"model": params["model"], "batch_size": params["batch_size"], "workers": batches.workers, **result}


@cli.command("train")
@click.option("--rows", default=2048, show_default=True, help="Generated training faces per task.")
@click.option("--epochs", default=2, show_default=True, help="Epochs per timing.")
@click.option("--repeats", default=3, show_default=True,
              help="Timings per way, taken in turn: images/s is their median, input_efficiency their paired mean.")
@click.option("--task", type=click.Choice(["keypoints", "expressions", "both"]), default="both", show_default=True)
@click.option("--recipe", type=click.Choice(list(RECIPES)), default=DEFAULT_RECIPE, show_default=True,
              help="Whose model, batch size and augmentation to time.")
@click.option("--precision", type=click.Choice([*PRECISIONS, "both"]), default="float32", show_default=True)
@click.option("--augment-on", type=click.Choice(["host", "device"]), default="host", show_default=True,
              help="Augment on the host (numpy, worker threads) or on the device (layers in the model).")
@click.option("--jax/--no-jax", "with_jax", default=True, show_default=True,
              help="Also time the JAX backend's input path (in a process of its own).")
@click.option("--json-only", is_flag=True, hidden=True)   # the JAX subprocess's way of answering
def train_command(rows, epochs, repeats, task, recipe, precision, augment_on, with_jax, json_only):
    """Training images/s: the real input path, pre-augmented arrays, and the JAX backend."""
    import keras  # this benchmark's own: `bench --help` loads none of them

    from pipeline.core import devices  # this benchmark's own: `bench --help` loads none of them

    if augment_on == "device" and task == "keypoints":
        raise click.UsageError("--augment-on device is for expressions (keypoint targets move with the image)")
    tasks = ("expressions",) if augment_on == "device" else TASKS if task == "both" else (task,)
    precisions = PRECISIONS if precision == "both" else (precision,)
    if json_only:
        click.echo(json.dumps({t: measure(t, rows, epochs, False, repeats, recipe, precisions[0], augment_on)
                               for t in tasks}))
        return
    with_jax = with_jax and keras.config.backend() != "jax"
    click.echo(f"{devices.describe()}; {rows} generated faces, {epochs} epochs a timing, median of {repeats}")
    for chosen in precisions:
        jax = _jax_figures(tasks, rows, epochs, repeats, recipe, chosen, augment_on) if with_jax else {}
        for name in tasks:
            layout = threads.layout_for(default("model", name, recipe), chosen)   # run.py train's (core/threads.py)
            timed = measure if threads.use(layout) else functools.partial(threads.call, layout, measure)
            found = timed(name, rows, epochs, True, repeats, recipe, chosen, augment_on)
            efficiency, low, high = interval(found["efficiencies"])
            feed = f"{found['workers']} worker(s)" if augment_on == "host" else "augmented on the device"
            line = (f"{name:<12} {found['model']:<18} batch {found['batch_size']:>3} {chosen:<7}: input path "
                    f"{found['input_path']:7.0f} img/s ({feed}), in memory "
                    f"{found['in_memory']:7.0f} img/s ({keras.config.backend()}"
                    + (f", {threads.describe(layout)})" if layout else ")"))
            if name in jax:
                line += f", jax input path {jax[name]['input_path']:7.0f} img/s"
            click.echo(line)
            suffix = "" if chosen == "float32" else f"_{chosen}"
            click.echo(f"input_efficiency_{name}{suffix}={efficiency:.2f}  (95% CI {low:.2f}..{high:.2f})")
            click.echo(f"images_per_second_{name}{suffix}={found['input_path']:.0f}")


def _jax_figures(tasks, rows, epochs, repeats, recipe, precision, augment_on):
    task = tasks[0] if len(tasks) == 1 else "both"
    done = subprocess.run([sys.executable, "-m", "pipeline.bench", "train", "--json-only", "--task", task,
                           "--rows", str(rows), "--epochs", str(epochs), "--repeats", str(repeats),
                           "--recipe", recipe, "--precision", precision, "--augment-on", augment_on],
                          capture_output=True, text=True, env={**os.environ, "KERAS_BACKEND": "jax"})
    if done.returncode:
        click.echo(f"jax: failed ({(done.stderr.strip().splitlines() or ['?'])[-1]})", err=True)
        return {}
    return json.loads(done.stdout.strip().splitlines()[-1])
