"""python -m pipeline.bench augment | heap: where a training step's time goes on the CPU."""
import time

import click
import numpy as np

from pipeline.models import INPUT_SHAPES, build_model
from pipeline.core.recipes import default

from pipeline.bench import HALF, _bench_data, _best_ms, cli


@cli.command("augment")
@click.option("--batch-size", default=64, show_default=True)
@click.option("--repeats", default=20, show_default=True)
def augment_command(batch_size, repeats):
    """Augmentation time per batch against one training step of each task's default model."""
    import keras  # this benchmark's own: `bench --help` loads none of them

    from pipeline.training.augment import augment_image_batch, augment_keypoint_batch  # this benchmark's own: `bench --help` loads none of them

    for task in ("keypoints", "expressions"):
        x, y = _bench_data(task, batch_size, seed=0)
        rng = np.random.default_rng(0)
        if task == "keypoints":
            pixels = y * HALF + HALF
            augment = lambda: augment_keypoint_batch(x, pixels, rng)  # noqa: E731
        else:
            augment = lambda: augment_image_batch(x, rng)  # noqa: E731
        augment_ms = _best_ms(augment, repeats)

        model = build_model(default("model", task), INPUT_SHAPES[task], 30 if task == "keypoints" else 7)
        model.compile("adam", "mse" if task == "keypoints" else "sparse_categorical_crossentropy")
        step_ms = _best_ms(lambda: model.train_on_batch(x, y), max(3, repeats // 4))
        keras.backend.clear_session()
        click.echo(f"{task:<12} batch {batch_size}: augment {augment_ms:7.1f} ms, "
                   f"{default('model', task)} train step {step_ms:7.1f} ms, ratio {augment_ms / step_ms:.2f}")


@cli.command("heap")
@click.option("--rows", default=1024, show_default=True)
@click.option("--epochs", default=3, show_default=True, help="Per setting; the first is a warm-up.")
def heap_command(rows, epochs):
    """Training step time of the default expressions model, tf.data's malloc settings vs KeepBuffers."""
    import keras  # this benchmark's own: `bench --help` loads none of them

    from pipeline.training import augment as aug  # this benchmark's own: `bench --help` loads none of them
    from pipeline.training import heap  # this benchmark's own: `bench --help` loads none of them

    if not heap.available() or keras.config.backend() != "tensorflow":
        raise click.ClickException("needs the TensorFlow backend on glibc")

    class TfDataThresholds(keras.callbacks.Callback):   # what the generator's "memory patch" sets
        def on_train_batch_begin(self, batch, logs=None):
            heap.set_thresholds(heap.TF_DATA_THRESHOLD)

    x, y = _bench_data("expressions", rows, seed=0)
    model = build_model(default("model", "expressions"), INPUT_SHAPES["expressions"], 7)
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
