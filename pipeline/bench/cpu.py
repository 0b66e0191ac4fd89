"""python -m pipeline.bench cpu: how far training runs from this CPU's arithmetic limit, measured in one run.

The limit is a large matrix multiplication through the same TensorFlow build and thread settings
the training uses: float32 always, bfloat16 where the CPU has bfloat16 units (AVX512_BF16 or AMX).
Each default model's training FLOPs per image are counted from its graph (TensorFlow's profiler on
the forward pass of one image, times 3 for the backward pass), and its training speed is timed
through run.py train's real input path (augment.Batches into model.fit). The timings are taken in
turn, each repeat of every measurement before the next repeat of any, so a slow spell of a shared
machine touches all of them alike, and each figure is given with a 95% confidence interval.

    flop_efficiency_<model> = training GFLOP/s / float32 matmul GFLOP/s
"""
import contextlib
import multiprocessing
import os
import time
from pathlib import Path

import click
import numpy as np

from pipeline.bench import cli, interval
from pipeline.core import threads
from pipeline.core.hardware import has_bfloat16_units
from pipeline.models import get_spec

# The models these benchmarks time, each with the recipe whose batch size and augmentation it takes:
# the recipes' default models, and compact_vgg_wide, what `fast` trains for expressions where
# --precision auto picks mixed bfloat16 (not timed unless named).
RECIPE = {"compact_vgg": "fast", "heatmap_keypoints": "fast", "densenet": "best", "compact_vgg_wide": "fast"}
DEFAULT_MODELS = ("compact_vgg", "heatmap_keypoints", "densenet")
# Training steps a timing takes (one fit of one epoch): a few seconds each on 2 cores. Each fit pays
# a start-up (the feed's threads, a new iterator) that a real epoch (176 steps for keypoints, 449 for
# FER2013) pays once; 24-step timings charged compact_vgg 14% for it (1,939 against 2,258 img/s
# mixed with 96 steps on the Xeon), heatmap_keypoints 4%. densenet's step is ~20x compact_vgg's.
STEPS = {"compact_vgg": 96, "heatmap_keypoints": 96, "densenet": 6, "compact_vgg_wide": 48}
FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")


def cpu_description():
    """(model name, the ISA flags of FLAGS it has, usable cores) from /proc/cpuinfo (Linux)."""
    model, flags = "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return model, [flag for flag in FLAGS if flag in flags], len(os.sched_getaffinity(0))


def matmul_timer(dtype, size):
    """A function that times one size x size matrix product in `dtype` and returns its GFLOP/s."""
    import tensorflow as tf  # the point here: the matmul the training's kernels come from

    a = tf.cast(tf.random.stateless_normal((size, size), seed=(1, 2)), dtype)
    b = tf.cast(tf.random.stateless_normal((size, size), seed=(3, 4)), dtype)
    product = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32)))
    product()   # trace and warm the caches

    def measure(repeats=4):
        started = time.perf_counter()
        for _ in range(repeats):
            product().numpy()
        return 2 * size ** 3 * repeats / (time.perf_counter() - started) / 1e9
    return measure


def training_flops_per_image(name):
    """Forward FLOPs of one image through model `name` (TensorFlow's profiler), times 3."""
    import keras  # this benchmark's own: `bench --help` loads none of them
    import tensorflow as tf  # the profiler counts the graph's floating-point operations
    # freezing the variables lets the profiler see the convolutions' shapes
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    from pipeline.models import INPUT_SHAPES, N_OUTPUTS, build_model  # this benchmark's own

    task = get_spec(name).task
    model = build_model(name, INPUT_SHAPES[task], N_OUTPUTS[task])
    forward = tf.function(lambda x: model(x, training=False))
    graph = convert_variables_to_constants_v2(
        forward.get_concrete_function(tf.TensorSpec((1, *INPUT_SHAPES[task]), tf.float32))).graph
    options = (tf.compat.v1.profiler.ProfileOptionBuilder(tf.compat.v1.profiler.ProfileOptionBuilder.float_operation())
               .with_empty_output().build())
    counted = tf.compat.v1.profiler.profile(graph=graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op",
                                            options=options)
    keras.backend.clear_session()
    return 3 * counted.total_float_ops


def recipe_batch(name, precision):
    """The batch size `name` trains with in its recipe in `precision` (as run.py train gives it)."""
    from pipeline.training.params import resolve  # this benchmark's own

    return resolve(get_spec(name).task, {"model": name, "precision": precision}, RECIPE[name])["batch_size"]


def training_timer(name, precision, steps):
    """A function that times `steps` training steps of `name` through the input path; images/s."""
    from pipeline.bench.throughput import _setup  # this benchmark's own
    from pipeline.training import feed, heap  # this benchmark's own

    task, recipe = get_spec(name).task, RECIPE[name]
    params, _, batches, model = _setup(task, steps * recipe_batch(name, precision), recipe, precision, model=name)
    data, needed = feed.for_fit(batches)   # as run.py train feeds them
    callbacks = [*needed, heap.KeepBuffers()]
    model.fit(data, epochs=1, shuffle=False, verbose=0, callbacks=callbacks)   # trace, compile, warm up

    def measure():
        started = time.perf_counter()
        model.fit(data, epochs=1, shuffle=False, verbose=0, callbacks=callbacks)
        return len(batches) * params["batch_size"] / (time.perf_counter() - started)
    return measure, params["batch_size"]


def remote_training_timer(layout, name, precision, steps):
    """training_timer's measure, run in a fresh process whose TensorFlow has thread `layout` (the one
    run.py train gives the model; core/threads.py), so that it can still be timed in turn with the rest."""
    context = multiprocessing.get_context("spawn")
    here, there = context.Pipe()
    context.Process(target=_serve_timer, args=(there, layout, name, precision, steps), daemon=True).start()
    here.recv()   # built and warmed up

    def measure():
        here.send("measure")
        return here.recv()
    return measure


def timer_with_its_threads(name, precision, steps):
    """(measure, thread layout): training_timer's measure, here if this process has (or can still
    take) the layout run.py train gives the model, else in a process of its own that has it."""
    layout = threads.layout_for(name, precision)
    if threads.use(layout):
        return training_timer(name, precision, steps)[0], layout or threads.running()
    return remote_training_timer(layout, name, precision, steps), layout


def _serve_timer(connection, layout, name, precision, steps):
    threads.use(layout)
    measure, _ = training_timer(name, precision, steps)
    connection.send("ready")
    with contextlib.suppress(EOFError):   # the benchmark has ended
        while connection.recv() == "measure":
            connection.send(measure())


def checked_models(models, command):
    """The names in comma-separated `models`, once each is one of RECIPE's and Keras runs TensorFlow
    (a click.UsageError naming `command` otherwise)."""
    import keras  # this benchmark's own: `bench --help` loads none of them

    names = [name.strip() for name in models.split(",") if name.strip()]
    unknown = [name for name in names if name not in RECIPE]
    if unknown:
        raise click.UsageError(f"--models: {unknown[0]} is not one of {', '.join(RECIPE)}")
    if keras.config.backend() != "tensorflow":
        raise click.UsageError(f"bench {command} measures the TensorFlow backend (unset KERAS_BACKEND)")
    return names


def echo_cpu():
    """Prints the CPU's model and ISA flags; (its usable cores, whether oneDNN may use bfloat16 units)."""
    model, flags, cores = cpu_description()
    click.echo(f"cpu_model={model}")
    click.echo(f"cpu_flags={' '.join(flags) or 'none of ' + ','.join(FLAGS)}")
    return cores, has_bfloat16_units(flags)   # the flags, and ONEDNN_MAX_CPU_ISA letting oneDNN use them


def precisions_to_time(precision, bf16):
    """--precision float32 | mixed | both as a list, mixed only where the CPU has bfloat16 units."""
    return [p for p in (("float32", "mixed") if precision == "both" else (precision,)) if p == "float32" or bf16]


@cli.command("cpu")
@click.option("--repeats", default=5, show_default=True, help="Timings of each measurement, taken in turn.")
@click.option("--models", default=",".join(DEFAULT_MODELS), show_default=True,
              help=f"Comma-separated models to time, of: {', '.join(RECIPE)}.")
@click.option("--steps", type=float, default=1.0, show_default=True,
              help="Scale each timing's training steps (compact_vgg and heatmap_keypoints 96, "
                   "compact_vgg_wide 48, densenet 6).")
@click.option("--matmul-size", default=2048, show_default=True, help="Side of the timed matrix product.")
@click.option("--precision", type=click.Choice(["float32", "mixed", "both"]), default="both", show_default=True,
              help="Training precision(s) to time; mixed only where the CPU has bfloat16 units.")
def cpu_command(repeats, models, steps, matmul_size, precision):
    """FLOP efficiency of training: each default model's GFLOP/s against the CPU's matmul GFLOP/s."""
    import tensorflow as tf  # its thread settings are the training's

    names = checked_models(models, "cpu")
    cores, bf16 = echo_cpu()
    threads.use(threads.layout_for("compact_vgg", "float32"))   # the matmul's: TensorFlow's default, all cores on it
    inter, intra = threads.running()
    click.echo(f"cores={cores} intra_op_threads={intra} inter_op_threads={inter} "
               f"(0: TensorFlow's default, one per core) "
               f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS')} "
               f"ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', 'unset')}")
    click.echo(f"bfloat16_units={'yes' if bf16 else 'no'}")

    precisions = precisions_to_time(precision, bf16)
    timers = {"matmul_float32": matmul_timer(tf.float32, matmul_size)}
    if bf16:
        timers["matmul_bfloat16"] = matmul_timer(tf.bfloat16, matmul_size)
    flops = {name: training_flops_per_image(name) for name in names}
    layouts = {}
    for name in names:
        for chosen in precisions:
            timers[f"{name}_{chosen}"], layouts[f"{name}_{chosen}"] = timer_with_its_threads(
                name, chosen, max(1, round(STEPS[name] * steps)))
    samples = {key: [] for key in timers}
    for _ in range(repeats):   # in turn: every measurement once, then again
        for key, measure in timers.items():
            samples[key].append(measure())

    rates = {}
    for key in [k for k in timers if k.startswith("matmul_")]:
        mean, low, high = interval(samples[key])
        rates[key] = mean
        click.echo(f"{key}_gflops={mean:.4g}  (95% CI {low:.4g}..{high:.4g})")
    for name in names:
        click.echo(f"training_mflops_per_image_{name}={flops[name] / 1e6:.0f}")
        for chosen in precisions:
            mean, low, high = interval(samples[f"{name}_{chosen}"])
            suffix = "" if chosen == "float32" else "_mixed"
            gflops = mean * flops[name] / 1e9
            click.echo(f"images_per_second_{name}{suffix}={mean:.4g}  (95% CI {low:.4g}..{high:.4g})  "
                       f"[batch {recipe_batch(name, chosen)}, {threads.describe(layouts[f'{name}_{chosen}'])}]")
            click.echo(f"gflops_{name}{suffix}={gflops:.4g}")
            click.echo(f"flop_efficiency_{name}{suffix}={gflops / rates['matmul_float32']:.3g}")
            if chosen == "mixed":
                click.echo(f"bfloat16_flop_efficiency_{name}={gflops / rates['matmul_bfloat16']:.2f}")
    click.echo(f"repeats={repeats}")
