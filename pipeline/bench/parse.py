"""python -m pipeline.bench parse: clean's pixel parser against the per-row parse of Kaggle tutorials.

Writes full-size files in both Kaggle layouts to a temporary folder (training.csv: 7,049 rows of
9,216 pixels; fer2013.csv: 35,887 rows of 2,304; the built-in sample's faces, so pixel values and
keypoints have the real ranges), reads each with clean's read_csv and parses its pixel column, the
list of str that clean hands over, both ways in one process, interleaved:

    reference: np.stack([np.fromstring(s, sep=" ") for s in column]).astype(np.uint8)
    clean:     pipeline.data.pixels.parse_pixel_strings(column, n_pixels).pixels

It checks that the two arrays are identical and prints the ratio of the best times, the peak memory
of each parse (tracemalloc, in an untimed run), and the whole-file ratio: the best read (pandas'
default read_csv for the reference, clean's read_csv) plus the best parse.
"""
import os
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

import click
import numpy as np

from pipeline.bench import cli

FILES = {   # task: (file, pixel column, pixels a row, rows in Kaggle's file)
    "keypoints": ("training.csv", "Image", 96 * 96, 7049),
    "expressions": ("fer2013.csv", "pixels", 48 * 48, 35887),
}


def reference_parse(column):
    """The per-row parse of the Kaggle tutorials, cast to clean's dtype."""
    return np.stack([np.fromstring(s, sep=" ") for s in column]).astype(np.uint8)


def clean_parse(column, n_pixels):
    from pipeline.data.pixels import parse_pixel_strings  # this benchmark's own: `bench --help` loads none of them

    return parse_pixel_strings(column, n_pixels).pixels


@cli.command("parse")
@click.option("--task", type=click.Choice(["both", *FILES]), default="both", show_default=True)
@click.option("--rows", type=int, default=None, help="Rows in each file  [default: Kaggle's: 7,049 and 35,887]")
@click.option("--repeats", default=3, show_default=True, help="Timed runs of each; the best counts.")
def parse_command(task, rows, repeats):
    """Parse speed and memory of clean's pixel parser against np.fromstring per row."""
    click.echo(f"cpu: {_cpu_model()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} "
               "(other work on the cores makes times noisy; each ratio compares runs interleaved in one process)")
    click.echo("parse input: the pixel column as the list of str clean's read_csv gives; output: (rows, pixels) uint8")
    tasks = list(FILES) if task == "both" else [task]
    with tempfile.TemporaryDirectory() as folder:
        for name in tasks:
            _bench_task(name, Path(folder), rows, repeats)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # KiB on Linux
    click.echo(f"process_peak_rss_mb={peak_rss_mb:.0f}   (the whole benchmark, writing the files included)")


def _bench_task(task, folder, rows, repeats):
    import pandas as pd  # this benchmark's own: `bench --help` loads none of them

    from pipeline.data import sample  # this benchmark's own: `bench --help` loads none of them
    from pipeline.data.csvfiles import read_csv  # this benchmark's own: `bench --help` loads none of them

    file_name, column_name, n_pixels, kaggle_rows = FILES[task]
    rows = rows or kaggle_rows
    sizes = sample.SampleSizes(keypoints_train=rows, keypoints_test=10, expressions=rows)
    sample.WRITERS[task](folder, np.random.default_rng(0), sizes)
    path = folder / file_name
    column = read_csv(path, required=(column_name,))[column_name].tolist()

    reference_mb, expected = _peak_mb(lambda: reference_parse(column))
    clean_mb, parsed = _peak_mb(lambda: clean_parse(column, n_pixels))
    if not np.array_equal(parsed, expected):
        raise click.ClickException(f"{task}: clean's parser and the reference give different arrays")

    runs = {
        "reference parse": lambda: reference_parse(column),
        "clean parse": lambda: clean_parse(column, n_pixels),
        "reference read": lambda: pd.read_csv(path),
        "clean read": lambda: read_csv(path, required=(column_name,)),
    }
    best = {name: float("inf") for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - started)

    click.echo(f"{task}: {file_name}, {rows:,} rows x {n_pixels:,} pixels, {path.stat().st_size / 1e6:.0f} MB; "
               f"identical arrays; best of {repeats}:")
    click.echo(f"  parse: reference {best['reference parse']:.2f} s, clean {best['clean parse']:.3f} s")
    click.echo(f"  read + parse: reference {best['reference read']:.2f} + {best['reference parse']:.2f} s, "
               f"clean {best['clean read']:.2f} + {best['clean parse']:.3f} s")
    click.echo(f"parse_speedup_{task}={best['reference parse'] / best['clean parse']:.1f}")
    file_speedup = (best["reference read"] + best["reference parse"]) / (best["clean read"] + best["clean parse"])
    click.echo(f"file_speedup_{task}={file_speedup:.1f}")
    click.echo(f"parse_peak_memory_mb_{task}={clean_mb:.0f}")
    click.echo(f"reference_parse_peak_memory_mb_{task}={reference_mb:.0f}")


def _peak_mb(function):
    """(peak MB that `function` allocated, its result). Untimed: tracemalloc slows allocations."""
    tracemalloc.start()
    try:
        result = function()
        return tracemalloc.get_traced_memory()[1] / 1e6, result
    finally:
        tracemalloc.stop()


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as handle:
            return next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        import platform  # this benchmark's own: `bench --help` loads none of them

        return platform.machine()
