"""Benchmarks that print measured numbers, never run by the test suite (python -m pipeline.bench ...).

    python -m pipeline.bench models --task both --epochs 5 --rows 400
        trains every model of a task for the same small budget, with the same seed and data,
        and prints one table: parameters, epochs run, wall time, validation RMSE (px) or accuracy.
    python -m pipeline.bench heap
        times training steps with the malloc thresholds tf.data's generator sets, then with
        heap.KeepBuffers raising them again (TensorFlow backend on glibc).
    python -m pipeline.bench augment
        times augmentation of a batch against one training step of the default model: the ratio
        says whether augmentation on the CPU could slow training down.
    python -m pipeline.bench parse
        writes full-size files in both Kaggle layouts, parses their pixel column with the tutorials'
        per-row np.fromstring and with the clean stage's parser, checks the arrays are identical and
        prints parse_speedup_keypoints=, parse_speedup_expressions= and peak memory.
    python -m pipeline.bench train
        training images/s of each task's default model through run.py train's input path, on
        pre-augmented arrays, and on JAX; prints input_efficiency (the first over the second).
    python -m pipeline.bench cpu
        the CPU's float32 (and bfloat16) matmul GFLOP/s, each default model's training FLOPs per
        image and images/s through the input path, and flop_efficiency_<model>= (the first over
        the second), with the CPU model, its ISA flags and the thread counts.
    python -m pipeline.bench layers
        each convolution and batch norm of compact_vgg and heatmap_keypoints timed alone (forward,
        and with its gradients), their shares of the whole step, and flop_efficiency_ceiling_<model>=:
        the efficiency the step would reach if nothing but its convolutions cost time.
    python -m pipeline.bench onednn
        the kernel gradient of a stride-2 1x1 convolution, as Conv2D(strides=2) and as the models'
        strided_pointwise, against numpy, for a few input channels and batch sizes; each case in
        a process of its own, since the broken kernel can crash it.
    python -m pipeline.bench serve --root . --fer-path /tmp/fer-pkg
        predict-video's faces/s against the fer package's Video.analyze on the same clip and CPUs,
        then `run.py serve` on loopback: requests/s, p50/p99 latency at 1, 8 and 32 concurrent
        clients, and its resident memory before and after 1,000 requests.

Public: `cli`, the click group of the benchmarks (`python -m pipeline.bench --help`). Never imported by
the package: benchmarks sit above every layer.
"""
import statistics
import time

import click
import numpy as np

from pipeline.data import sample, scale

HALF = 48.0   # keypoint targets are scaled as (px - 48) / 48, the pipeline's "image" range


def _bench_data(task, rows, seed, as_bytes=False):
    """(x, y) for `task` from the built-in sample generator: images (rows, h, w, 1) float32 in
    [0, 1] (uint8 with `as_bytes`, as the scale stage stores them); keypoints scaled to [-1, 1]
    (rows, 30), or FER2013 labels (rows,)."""
    rng = np.random.default_rng(seed)
    if task == "keypoints":
        images, keypoints = sample.keypoints_arrays(rows, rng)
        y = ((keypoints - HALF) / HALF).astype(np.float32)
    else:
        images, y, _ = sample.expressions_arrays(rows, rng)
    return (images[..., None] if as_bytes else scale.pixels_to_unit(images)), y



@click.group()
def cli():
    """Benchmarks; each prints a table of measurements."""


def interval(samples):
    """(mean, low, high): the mean and its 95% confidence interval (Student's t)."""
    from scipy import stats  # this benchmark's own: `bench --help` loads none of them

    mean = statistics.fmean(samples)
    if len(samples) < 2:
        return mean, mean, mean
    half = stats.t.ppf(0.975, len(samples) - 1) * statistics.stdev(samples) / len(samples) ** 0.5
    return mean, mean - half, mean + half


def _best_ms(function, repeats):
    function()   # warm up (graph tracing, caches)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return 1000 * min(times)
