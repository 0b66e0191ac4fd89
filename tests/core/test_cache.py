import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from pipeline.core.cache import Cache, stage_lock
from pipeline.core.competitions import KEYPOINTS
from pipeline.core.fileio import load_arrays
from pipeline.cli import cli


def make(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("input")
    output = tmp_path / "out.txt"
    output.write_text("output")
    cache = Cache(tmp_path)
    cache.record(tmp_path / "m.json", "stage", [source], {"a": 1}, [output], {"rows": 3})
    return cache, source, output


def test_unchanged_stage_is_fresh(tmp_path):
    cache, source, _ = make(tmp_path)
    assert Cache(tmp_path).fresh(tmp_path / "m.json", [source], {"a": 1}) == {"rows": 3}


def test_changed_param_or_input_is_stale(tmp_path):
    cache, source, _ = make(tmp_path)
    assert Cache(tmp_path).fresh(tmp_path / "m.json", [source], {"a": 2}) is None
    source.write_text("other input")
    assert Cache(tmp_path).fresh(tmp_path / "m.json", [source], {"a": 1}) is None


def test_output_that_no_longer_matches_its_hash_is_stale(tmp_path):
    cache, source, output = make(tmp_path)
    output.write_text("outpuT")   # same size, different content
    assert Cache(tmp_path).fresh(tmp_path / "m.json", [source], {"a": 1}) is None


def test_missing_or_corrupt_manifest_is_stale(tmp_path):
    cache, source, output = make(tmp_path)
    (tmp_path / "m.json").write_text("{not json")
    assert Cache(tmp_path).fresh(tmp_path / "m.json", [source], {"a": 1}) is None
    (tmp_path / "m.json").unlink()
    assert Cache(tmp_path).fresh(tmp_path / "m.json", [source], {"a": 1}) is None


# --- through the command line: what a user sees --------------------------------------------------

RUN = str(Path(__file__).resolve().parents[2] / "run.py")


def status_in(output):
    """The status word ("ran" or "cached") of the clean stage's report line."""
    return re.search(r"^keypoints +clean +(\w+) ", output, re.MULTILINE).group(1)


def clean_status(root):
    result = CliRunner().invoke(cli, ["--root", str(root), "clean", "--task", "keypoints"])
    assert result.exit_code == 0, result.output
    return status_in(result.output)


def test_corrupted_output_is_recomputed_not_loaded(project):
    assert clean_status(project) == "ran"
    assert clean_status(project) == "cached"
    arrays = project / "data" / "interim" / KEYPOINTS.slug / "clean.npz"
    good = arrays.read_bytes()
    damaged = bytearray(good)
    damaged[len(damaged) // 2] ^= 0xFF               # one flipped byte, same size
    arrays.write_bytes(bytes(damaged))
    assert clean_status(project) == "ran"
    assert arrays.read_bytes() == good
    arrays.write_bytes(good[: len(good) // 2])       # truncated
    assert clean_status(project) == "ran"
    assert load_arrays(arrays)["train_images"].shape == (20, 96, 96)
    assert clean_status(project) == "cached"


def test_changed_raw_file_reruns_the_stage(project):
    assert clean_status(project) == "ran"
    training = project / "data" / "raw" / KEYPOINTS.slug / "training.csv"
    training.write_bytes(training.read_bytes().replace(b"\n", b"\r\n"))
    assert clean_status(project) == "ran"


def run_clean(root, **env):
    return subprocess.Popen([sys.executable, RUN, "--root", str(root), "clean", "--task", "keypoints"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env})


def test_a_held_lock_makes_a_second_run_give_up_with_a_clear_message(project):
    lock = project / "data" / ".locks" / f"{KEYPOINTS.slug}.clean.lock"
    with stage_lock(lock, wait_seconds=0):
        process = run_clean(project, FACES_LOCK_WAIT="1")
        out, err = process.communicate(timeout=60)
    assert process.returncode == 1, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (f"Error: run.py (pid {os.getpid()}) is working on this stage "
                                            f"({KEYPOINTS.slug}.clean.lock); try again when it ends")
    assert "keypoints clean: waiting for run.py" in out
    assert not (project / "data" / "interim").exists()


def test_bad_lock_wait_setting_is_one_line(project):
    result = CliRunner(env={"FACES_LOCK_WAIT": "soon"}).invoke(cli, ["--root", str(project), "clean", "--task", "keypoints"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.output.strip() == "Error: FACES_LOCK_WAIT='soon': expected a number of seconds"


def test_two_concurrent_runs_do_not_corrupt_each_other(project):
    first, second = run_clean(project), run_clean(project)
    outputs = [process.communicate(timeout=120) for process in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    statuses = sorted(status_in(out) for out, _ in outputs)   # the second waited for the first, then found it done
    assert statuses == ["cached", "ran"], outputs
    arrays = load_arrays(project / "data" / "interim" / KEYPOINTS.slug / "clean.npz")
    assert arrays["train_images"].shape == (20, 96, 96) and not np.isnan(arrays["train_keypoints"][:, 0]).any()
    assert clean_status(project) == "cached"
    assert not [p for p in (project / "data").rglob(".*") if p.is_file()]
