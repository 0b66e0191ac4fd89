"""python -m pipeline.bench train: training images/s of each task's default model, three ways.

1. input path: `run.py train`'s own feed, augment.Batches with the recipe's augmentation drawn per
   batch on the CPU, as model.fit sees it;
2. in memory: the same batches augmented beforehand, fed to model.fit as plain arrays (the model's
   own speed: no input work at all);
3. jax: the input path again, under KERAS_BACKEND=jax (in a process of its own).

`input_efficiency` = (1) / (2): how close the input path keeps training to the model's own speed.
Every figure is measured after a warm-up epoch (tracing, compilation), with the default recipe's
batch size, on the same generated faces.
"""
import json
import os
import subprocess
import sys
import time

import click
import numpy as np

from . import _bench_data, cli

TASKS = ("keypoints", "expressions")


def _setup(task, rows):
    from pipeline import scale, train
    from pipeline.recipes import resolve

    params = resolve(task, {})
    x, y = _bench_data(task, rows, seed=0)
    if task == "keypoints":
        scaling = scale.KeypointScaling((0.0,) * 30, (96.0,) * 30)   # (px - 48) / 48, as _bench_data
        data = train.TrainingData(x, y, x[:64], y[:64], scaling=scaling)
    else:
        one_hot = np.eye(7, dtype=np.float32)[y]
        data = train.TrainingData(x, one_hot, x[:64], one_hot[:64], y, y[:64], classes=tuple(range(7)))
    batches = train._batches(task, data, params)
    model = train._compiled_model(task, data, params, steps_per_epoch=len(batches))
    return params, data, batches, model


def _images_per_second(fit, images, epochs):
    fit(1)   # warm-up: tracing and compilation
    started = time.perf_counter()
    fit(epochs)
    return images * epochs / (time.perf_counter() - started)


def measure(task, rows, epochs, in_memory=True):
    """{"input_path": images/s, "in_memory": images/s} for `task`'s default model."""
    params, data, batches, model = _setup(task, rows)
    seen = len(batches) * params["batch_size"]
    result = {"model": params["model"], "batch_size": params["batch_size"],
              "input_path": _images_per_second(
                  lambda n: model.fit(batches, epochs=n, shuffle=False, verbose=0), seen, epochs)}
    if in_memory:
        drawn = [batches[i] for i in range(len(batches))]
        x, y = np.concatenate([b[0] for b in drawn]), np.concatenate([b[1] for b in drawn])
        result["in_memory"] = _images_per_second(
            lambda n: model.fit(x, y, batch_size=params["batch_size"], epochs=n, shuffle=False, verbose=0),
            seen, epochs)
    return result


@cli.command("train")
@click.option("--rows", default=2048, show_default=True, help="Generated training faces per task.")
@click.option("--epochs", default=2, show_default=True, help="Timed epochs per way (after one warm-up epoch).")
@click.option("--task", type=click.Choice(["keypoints", "expressions", "both"]), default="both", show_default=True)
@click.option("--jax/--no-jax", "with_jax", default=True, show_default=True, help="Also time the JAX backend.")
@click.option("--json-only", is_flag=True, hidden=True)   # the JAX subprocess's way of answering
def train_command(rows, epochs, task, with_jax, json_only):
    """Training images/s: the real input path, pre-augmented arrays, and the JAX backend."""
    import keras

    tasks = TASKS if task == "both" else (task,)
    if json_only:
        click.echo(json.dumps({t: measure(t, rows, epochs, in_memory=False) for t in tasks}))
        return
    jax = _jax_figures(tasks, rows, epochs) if with_jax else {}
    for name in tasks:
        found = measure(name, rows, epochs)
        efficiency = found["input_path"] / found["in_memory"]
        line = (f"{name:<12} {found['model']:<18} batch {found['batch_size']:>3}: input path "
                f"{found['input_path']:7.0f} img/s, in memory {found['in_memory']:7.0f} img/s "
                f"({keras.config.backend()})")
        if name in jax:
            line += f", jax input path {jax[name]['input_path']:7.0f} img/s"
        click.echo(line)
        click.echo(f"input_efficiency_{name}={efficiency:.2f}")


def _jax_figures(tasks, rows, epochs):
    task = tasks[0] if len(tasks) == 1 else "both"
    done = subprocess.run([sys.executable, "-m", "pipeline.bench", "train", "--json-only", "--task", task,
                           "--rows", str(rows), "--epochs", str(epochs)],
                          capture_output=True, text=True, env={**os.environ, "KERAS_BACKEND": "jax"})
    if done.returncode:
        click.echo(f"jax: failed ({(done.stderr.strip().splitlines() or ['?'])[-1]})", err=True)
        return {}
    return json.loads(done.stdout.strip().splitlines()[-1])
