"""python -m pipeline.bench layers: where a training step's time goes, layer by layer.

Each convolution and each batch normalization of a model is timed alone, at the batch size its
recipe trains it with in that precision, through the layer itself (so through TensorFlow's oneDNN
kernels, models/conv.py's matrix-product gradient and models/batchnorm.py's fused kernel where the
model has them), with nothing beside it and all cores on it: its forward pass, and its forward pass
with the gradients a training step takes of it. The best of the repeats counts. Set beside the
whole step (timed through run.py train's input path, as `bench cpu` does), the sums split the step
three ways: convolutions, batch norms, and the rest (activations, pooling, joins, the loss, Adam,
the feed).

The convolutions carry almost all of the step's arithmetic, so their time alone bounds `bench
cpu`'s flop_efficiency_<model> from above:

    flop_efficiency_ceiling_<model> = training GFLOP / the convolutions' seconds / float32 matmul GFLOP/s

the efficiency the step would reach if nothing but its convolutions cost time. The first
convolution's input (the image) needs no gradient, so it is timed without one, as in training.
Layers alone run with TensorFlow's default threads (or TF_NUM_INTEROP_THREADS /
TF_NUM_INTRAOP_THREADS); the whole step with the layout run.py train gives the model.
"""
import time

import click

from pipeline.bench import cli, interval
from pipeline.bench.cpu import (RECIPE, STEPS, checked_models, echo_cpu, matmul_timer, precisions_to_time,
                                recipe_batch, timer_with_its_threads, training_flops_per_image)
from pipeline.core import threads
from pipeline.models import get_spec


def timed_layers(model):
    """(convolutions, batch norms): the model's Conv2D and BatchNormalization layers (subclasses
    included), each with the shape of what it is given."""
    import keras  # this benchmark's own: `bench --help` loads none of them

    def of(kind):
        return [(layer, tuple(layer.input.shape[1:])) for layer in model.layers if isinstance(layer, kind)]
    return of(keras.layers.Conv2D), of(keras.layers.BatchNormalization)


def forward_mflops(layer, input_shape):
    """Multiply-adds x 2 of one image through convolution `layer`, in millions."""
    height, width, channels = layer.compute_output_shape((1, *input_shape))[1:]
    kernel_h, kernel_w = layer.kernel_size
    return 2 * height * width * channels * kernel_h * kernel_w * input_shape[-1] // layer.groups / 1e6


def layer_timers(layer, input_shape, batch, needs_input_gradient=True):
    """(forward, training): functions that time `layer` on a batch, in seconds a pass: its forward
    pass in training mode, and that with the gradients a training step takes of it."""
    import tensorflow as tf  # what is timed: TensorFlow's kernels, one layer at a time

    dtype = layer.compute_dtype
    x = tf.cast(tf.random.stateless_uniform((batch, *input_shape), seed=(1, 2)), dtype)
    dy = tf.cast(tf.random.stateless_normal(layer.compute_output_shape((batch, *input_shape)), seed=(3, 4)), dtype)

    def first(tensor):   # keeps the op that makes `tensor` without another pass over it
        return tf.cast(tf.reshape(tensor, [-1])[0], tf.float32)

    # `calls` passes in one graph call, one after the other (a Python call costs ~0.3 ms, as much
    # as a small layer)
    @tf.function
    def forward(x, calls):
        total = tf.constant(0.0)
        for _ in tf.range(calls):
            tf.autograph.experimental.set_loop_options(parallel_iterations=1)
            total += first(layer(x, training=True))
        return total

    @tf.function
    def training(x, dy, calls):
        total = tf.constant(0.0)
        for _ in tf.range(calls):
            tf.autograph.experimental.set_loop_options(parallel_iterations=1)
            with tf.GradientTape() as tape:
                if needs_input_gradient:
                    tape.watch(x)
                y = layer(x, training=True)
            sources = ([x] if needs_input_gradient else []) + list(layer.trainable_variables)
            gradients = tape.gradient(y, sources, output_gradients=dy)
            total += first(y) + tf.add_n([first(gradient) for gradient in gradients])
        return total

    def timer(function, *args):
        function(*args, tf.constant(1)).numpy()   # trace and warm up

        def measure(calls=8):
            started = time.perf_counter()
            function(*args, tf.constant(calls)).numpy()
            return (time.perf_counter() - started) / calls
        return measure

    return timer(forward, x), timer(training, x, dy)


def _model(name, precision):
    from pipeline.models import INPUT_SHAPES, N_OUTPUTS, build_model  # this benchmark's own
    from pipeline.training.train import mixed_precision  # this benchmark's own

    with mixed_precision(precision):
        task = get_spec(name).task
        return build_model(name, INPUT_SHAPES[task], N_OUTPUTS[task])


class Case:
    """One model in one precision: its layers' timers and best times, and its whole step's timings."""

    def __init__(self, name, precision, steps):
        self.name, self.precision, self.batch = name, precision, recipe_batch(name, precision)
        self.model = _model(name, precision)
        self.convolutions, self.norms = timed_layers(self.model)
        image = self.model.inputs[0]
        self.timers = ([layer_timers(layer, shape, self.batch, layer.input is not image)
                        for layer, shape in self.convolutions]
                       + [layer_timers(layer, shape, self.batch) for layer, shape in self.norms])
        self.best = [[float("inf")] * 2 for _ in self.timers]
        self.step, self.layout = timer_with_its_threads(name, precision, steps)
        self.images_per_second = []

    def measure(self):
        for best, pair in zip(self.best, self.timers):
            best[:] = [min(seconds, measure()) for seconds, measure in zip(best, pair)]
        self.images_per_second.append(self.step())

    def report(self, flops_per_image, matmul_gflops):
        name, batch, image = self.name, self.batch, self.model.inputs[0]
        suffix = "" if self.precision == "float32" else "_mixed"
        conv_best, norm_best = self.best[:len(self.convolutions)], self.best[len(self.convolutions):]
        click.echo(f"\n{name}, {self.precision}, batch {batch}: {len(self.convolutions)} convolutions")
        click.echo(f"{'layer':<24} {'input':>10} {'kernel':>11} {'stride':>6} {'MFLOP/step':>10} "
                   f"{'forward ms':>10} {'GFLOP/s':>7} {'training ms':>11} {'GFLOP/s':>7}")
        conv_seconds = conv_mflops = 0.0
        for (layer, shape), (forward_s, training_s) in zip(self.convolutions, conv_best):
            mflops = forward_mflops(layer, shape) * batch
            passes = 3 if layer.input is not image else 2   # the image needs no gradient
            conv_seconds += training_s
            conv_mflops += passes * mflops
            kernel = "x".join(map(str, (*layer.kernel_size, shape[-1], layer.filters)))
            click.echo(f"{layer.name:<24} {'x'.join(map(str, shape)):>10} {kernel:>11} {layer.strides[0]:>6} "
                       f"{passes * mflops:>10.1f} {forward_s * 1e3:>10.2f} {mflops / forward_s / 1e3:>7.0f} "
                       f"{training_s * 1e3:>11.2f} {passes * mflops / training_s / 1e3:>7.0f}")
        click.echo(f"\n{len(self.norms)} batch norms")
        click.echo(f"{'layer':<24} {'input':>10} {'forward ms':>10} {'training ms':>11}")
        for (layer, shape), (forward_s, training_s) in zip(self.norms, norm_best):
            click.echo(f"{layer.name:<24} {'x'.join(map(str, shape)):>10} {forward_s * 1e3:>10.2f} "
                       f"{training_s * 1e3:>11.2f}")
        norm_seconds = sum(training_s for _, training_s in norm_best)

        mean, low, high = interval(self.images_per_second)
        step_seconds, step_gflop = batch / mean, flops_per_image * batch / 1e9
        rest = step_seconds - conv_seconds - norm_seconds
        click.echo(f"step_ms_{name}{suffix}={step_seconds * 1e3:.4g}  (95% CI {batch / high * 1e3:.4g}.."
                   f"{batch / low * 1e3:.4g}; through the input path, [{threads.describe(self.layout)}])")
        click.echo(f"convolution_ms_per_step_{name}{suffix}={conv_seconds * 1e3:.4g}  "
                   f"({conv_mflops / 1e3 / step_gflop:.3f} of the step's FLOPs, at "
                   f"{conv_mflops / conv_seconds / 1e3:.4g} GFLOP/s)")
        click.echo(f"batchnorm_ms_per_step_{name}{suffix}={norm_seconds * 1e3:.4g}")
        click.echo(f"rest_ms_per_step_{name}{suffix}={rest * 1e3:.4g}")
        click.echo(f"convolution_share_of_step_{name}{suffix}={conv_seconds / step_seconds:.3f}")
        click.echo(f"batchnorm_share_of_step_{name}{suffix}={norm_seconds / step_seconds:.3f}")
        click.echo(f"flop_efficiency_{name}{suffix}={step_gflop / step_seconds / matmul_gflops:.3g}")
        click.echo(f"flop_efficiency_ceiling_{name}{suffix}={step_gflop / conv_seconds / matmul_gflops:.3g}")


@cli.command("layers")
@click.option("--models", default="compact_vgg,heatmap_keypoints", show_default=True,
              help=f"Comma-separated models, of: {', '.join(RECIPE)}.")
@click.option("--precision", type=click.Choice(["float32", "mixed", "both"]), default="both", show_default=True,
              help="Precision(s) to time; mixed only where the CPU has bfloat16 units.")
@click.option("--repeats", default=5, show_default=True,
              help="Timings of each measurement, taken in turn (a layer's best counts, the step's mean).")
@click.option("--steps", type=float, default=1.0, show_default=True,
              help="Scale the whole step's timings (bench cpu's: compact_vgg and heatmap_keypoints 96 steps).")
@click.option("--matmul-size", default=2048, show_default=True, help="Side of the timed matrix product.")
def layers_command(models, precision, repeats, steps, matmul_size):
    """Each convolution and batch norm timed alone, their share of the step, and the flop_efficiency
    the convolutions would allow if nothing else cost time."""
    import tensorflow as tf  # the matmul the ceiling is measured against

    names = checked_models(models, "layers")
    cores, bf16 = echo_cpu()
    threads.use(threads.layout_for("compact_vgg", "float32"))   # TensorFlow's default: all cores on each op
    click.echo(f"cores={cores} layers alone with [{threads.describe(threads.running())}]")

    matmul = matmul_timer(tf.float32, matmul_size)
    cases = [Case(name, chosen, max(1, round(STEPS[name] * steps)))
             for name in names for chosen in precisions_to_time(precision, bf16)]
    matmul_samples = []
    for _ in range(repeats):   # in turn: every measurement once, then again
        matmul_samples.append(matmul())
        for case in cases:
            case.measure()

    matmul_gflops, low, high = interval(matmul_samples)
    click.echo(f"matmul_float32_gflops={matmul_gflops:.4g}  (95% CI {low:.4g}..{high:.4g})")
    for case in cases:
        case.report(training_flops_per_image(case.name), matmul_gflops)
    click.echo(f"\nrepeats={repeats}")
