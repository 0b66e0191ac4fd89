"""A stage killed part-way (SIGKILL: no cleanup runs) is redone by the next run, never trusted.

`run.py clean` runs in a subprocess on a FER2013 file big enough to take a second; the test watches
data/interim/ and kills the process at a chosen moment, then runs `clean` again.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.data import sample
from pipeline.core.competitions import EXPRESSIONS
from pipeline.core.fileio import load_arrays
from pipeline.cli import cli

RUN = str(Path(__file__).resolve().parents[1] / "run.py")
ROWS = 3000   # about 25 MB of CSV: clean takes about a second, writing clean.npz some milliseconds
ATTEMPTS = 4


@pytest.fixture(scope="module")
def fer2013_bytes(tmp_path_factory):
    """A fer2013.csv of ROWS rows: the tiny sample's rows repeated (generating 3000 faces is slow)."""
    folder = tmp_path_factory.mktemp("sample")
    sample.write_sample(EXPRESSIONS, folder, seed=7, sizes=sample.SampleSizes(10, 10, 40))
    header, *rows = (folder / "fer2013.csv").read_bytes().rstrip(b"\n").split(b"\n")
    return b"\n".join([header, *(rows * (ROWS // len(rows) + 1))[:ROWS]]) + b"\n"


@pytest.fixture
def root(tmp_path, fer2013_bytes):
    raw = tmp_path / "data" / "raw" / EXPRESSIONS.slug
    raw.mkdir(parents=True)
    (raw / "fer2013.csv").write_bytes(fer2013_bytes)
    return tmp_path


def interim(root):
    return root / "data" / "interim" / EXPRESSIONS.slug


def temporaries(folder):
    return sorted(p.name for p in folder.glob(".*")) if folder.is_dir() else []


def kill_when(root, condition):
    """Run `clean` in a subprocess and SIGKILL it as soon as `condition()` holds.
    True if it was killed, False if it finished first."""
    process = subprocess.Popen([sys.executable, RUN, "--root", str(root), "clean", "--task", "expressions", "--force"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while process.poll() is None:
            if condition():
                process.send_signal(signal.SIGKILL)
                process.wait()
                return True
            time.sleep(0.0005)
        return False
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def assert_rerun_redoes_the_stage(root):
    runner = CliRunner()
    result = runner.invoke(cli, ["--root", str(root), "clean", "--task", "expressions"])
    assert result.exit_code == 0, result.output
    assert "expressions clean      ran" in result.output
    assert temporaries(interim(root)) == []           # what the killed writer left is gone
    arrays = load_arrays(interim(root) / "clean.npz")
    assert arrays["train_images"].shape[1:] == (48, 48)
    assert len(arrays["train_images"]) + len(arrays["test_images"]) == ROWS
    summary = json.loads((interim(root) / "clean.manifest.json").read_text())["summary"]
    assert summary["train_rows"] == len(arrays["train_images"])
    again = runner.invoke(cli, ["--root", str(root), "clean", "--task", "expressions"])
    assert "expressions clean      cached" in again.output, again.output


def test_killed_while_writing_an_output(root):
    """Killed while clean.npz is half written: only its temporary file exists, and no manifest."""
    half_written = lambda: any(name.startswith(".clean.npz.") for name in temporaries(interim(root)))  # noqa: E731
    for _ in range(ATTEMPTS):
        if kill_when(root, half_written):
            break
    else:
        pytest.fail(f"clean finished {ATTEMPTS} times before its temporary file could be seen")
    assert any(name.startswith(".clean.npz.") for name in temporaries(interim(root)))
    assert not (interim(root) / "clean.manifest.json").exists()
    assert_rerun_redoes_the_stage(root)


def test_killed_after_an_output_but_before_the_manifest(root):
    """Killed once clean.npz is complete but before the manifest vouches for it: outputs that look
    complete are still not trusted without their manifest."""
    npz, manifest = interim(root) / "clean.npz", interim(root) / "clean.manifest.json"
    for _ in range(ATTEMPTS):
        npz.unlink(missing_ok=True)
        if kill_when(root, npz.exists) and not manifest.exists():
            break
    else:
        pytest.fail(f"could not kill clean between its first output and its manifest in {ATTEMPTS} tries")
    assert load_arrays(npz)   # a complete file: atomic writes never leave a partial one under its name
    assert_rerun_redoes_the_stage(root)


def test_interrupted_write_leaves_the_previous_file(tmp_path):
    """In-process view of the same guarantee: an exception while writing leaves the old file and no
    temporary file."""
    from pipeline.core.fileio import atomic_open, save_arrays

    target = tmp_path / "a.npz"
    save_arrays(target, x=np.arange(3))
    with pytest.raises(KeyboardInterrupt):
        with atomic_open(target, "wb") as handle:
            handle.write(b"partial")
            raise KeyboardInterrupt
    assert load_arrays(target)["x"].tolist() == [0, 1, 2]
    assert os.listdir(tmp_path) == ["a.npz"]
