"""python -m pipeline.bench onednn: which shapes break oneDNN's strided 1x1 convolution on this CPU."""
import subprocess
import sys

import click
import numpy as np

from pipeline.bench import cli


def pointwise_gradient_error(in_channels, batch, formulation, size=44, filters=16, seed=0):
    """Largest error of a stride-2 1x1 convolution's kernel gradient, relative to the largest
    expected value, for `formulation` "conv" (Conv2D(strides=2)) or "sampled" (strided_pointwise).
    The gradient is read off one SGD step with learning rate 1 on the loss sum(output * upstream)."""
    import keras  # this benchmark's own: `bench --help` loads none of them

    from pipeline.models.layers import strided_pointwise  # this benchmark's own: `bench --help` loads none of them

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, size, size, in_channels)).astype(np.float32)
    upstream = rng.standard_normal((batch, (size + 1) // 2, (size + 1) // 2, filters)).astype(np.float32)
    inputs = keras.Input((size, size, in_channels))
    if formulation == "conv":
        outputs = keras.layers.Conv2D(filters, 1, strides=2, padding="same", use_bias=False, name="pointwise")(inputs)
    else:
        outputs = strided_pointwise(inputs, filters, 2, "pointwise", use_bias=False)
    model = keras.Model(inputs, outputs)
    before = model.get_layer("pointwise").get_weights()[0]
    model.compile(keras.optimizers.SGD(1.0), loss=lambda target, output: keras.ops.sum(target * output))
    model.train_on_batch(x, upstream)
    gradient = (before - model.get_layer("pointwise").get_weights()[0])[0, 0]
    expected = np.einsum("nhwc,nhwo->co", x[:, ::2, ::2], upstream)
    return float(np.abs(gradient - expected).max() / np.abs(expected).max())


@cli.command("onednn")
@click.option("--channels", default="1,4,8,16", show_default=True, help="Input channels to try.")
@click.option("--batches", default="1,5,31,32", show_default=True, help="Batch sizes to try.")
def onednn_command(channels, batches):
    """Which input channels and batch sizes break Conv2D(1x1, strides=2) on this CPU."""
    click.echo(f"{'channels':>8} {'batch':>6}  {'Conv2D(strides=2)':>18}  {'strided_pointwise':>18}")
    for in_channels in map(int, channels.split(",")):
        for batch in map(int, batches.split(",")):
            errors = [_error_in_subprocess(in_channels, batch, f) for f in ("conv", "sampled")]
            click.echo(f"{in_channels:>8} {batch:>6}  {errors[0]:>18}  {errors[1]:>18}")
    click.echo("relative error of the kernel gradient; above 1e-4 is wrong")


def _error_in_subprocess(in_channels, batch, formulation):
    code = ("from pipeline.bench.onednn import pointwise_gradient_error as e; "
            f"print(e({in_channels}, {batch}, {formulation!r}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode:
        return f"crashed (exit {done.returncode})"
    return f"{float(done.stdout.split()[-1]):.1e}"
