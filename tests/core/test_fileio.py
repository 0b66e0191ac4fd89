"""Atomic writes: a full disk or a refused write is one line naming the file, and leaves nothing
half-written; temporary files of killed writers do not pile up."""
import errno
import os
import stat
import subprocess
import sys

import pytest
from click.testing import CliRunner

from pipeline.core import fileio
from pipeline.core.competitions import KEYPOINTS
from pipeline.core.fileio import atomic_open, write_text
from pipeline.cli import cli


def clean(root):
    """`run.py --quiet clean`: without the progress line, the error is all there is to say."""
    return CliRunner().invoke(cli, ["--root", str(root), "--quiet", "clean", "--task", "keypoints"])


def assert_one_line_error(result, text):
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.output.strip().splitlines() == [f"Error: {text}"]


def interim_files(root):
    folder = root / "data" / "interim"
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_full_disk_is_one_line_and_leaves_nothing(project, monkeypatch, failing):
    monkeypatch.setattr(fileio.os, failing, no_space)
    result = clean(project)
    monkeypatch.undo()
    target = project / "data" / "interim" / KEYPOINTS.slug / "clean.npz"
    assert_one_line_error(result, f"cannot write {target}: the disk is full")
    assert interim_files(project) == []
    assert clean(project).exit_code == 0   # space again: the stage runs normally


def test_permission_denied_is_one_line(project, monkeypatch):
    target = project / "data" / "interim" / KEYPOINTS.slug / "clean.npz"
    if os.geteuid() != 0:
        target.parent.mkdir(parents=True)
        target.parent.chmod(stat.S_IRUSR | stat.S_IXUSR)
    else:   # root may write anywhere: make the system refuse as it would refuse a normal user
        def refuse(*args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied")
        monkeypatch.setattr(fileio.tempfile, "mkstemp", refuse)
    try:
        result = clean(project)
    finally:
        if target.parent.exists():
            target.parent.chmod(0o755)   # so that pytest can remove it
    assert_one_line_error(result, f"cannot write {target}: permission denied")
    assert interim_files(project) == []


def test_a_file_in_the_way_of_a_folder_is_named(project):
    """Works as root too: no permission can make a regular file act as a folder."""
    (project / "data" / "interim").write_text("not a folder")
    result = clean(project)
    target = project / "data" / "interim" / KEYPOINTS.slug / "clean.npz"
    assert_one_line_error(result, f"cannot write {target}: {project / 'data' / 'interim'} is a file, not a folder")


def test_written_files_get_the_usual_permissions(tmp_path):
    write_text(tmp_path / "a.txt", "x")
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o666 & ~fileio.UMASK


def dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_temporary_files_of_dead_writers_are_removed_by_the_next_write(tmp_path):
    target = tmp_path / "clean.npz"
    stale = tmp_path / f".clean.npz.{dead_pid()}-abcd1234.tmp"
    live = tmp_path / f".clean.npz.{os.getppid()}-abcd1234.tmp"    # a running process may still be writing
    other = tmp_path / f".meta.json.{dead_pid()}-abcd1234.tmp"     # another file's: left to its next write
    for path in (stale, live, other):
        path.write_text("partial")
    with atomic_open(target, "wb") as handle:
        handle.write(b"complete")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["clean.npz", live.name, other.name])


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.txt"
    write_text(target, "old")
    with pytest.raises(ValueError):
        with atomic_open(target) as handle:
            handle.write("new, half")
            raise ValueError("the writer failed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_load_arrays_reads_all_or_only_the_named_arrays(tmp_path):
    import numpy as np

    path = tmp_path / "arrays.npz"
    fileio.save_arrays(path, images=np.zeros((3, 4, 4, 1), np.uint8), labels=np.array([2, 0, 1]))
    assert sorted(fileio.load_arrays(path)) == ["images", "labels"]
    only = fileio.load_arrays(path, keys=("labels",))
    assert list(only) == ["labels"] and only["labels"].tolist() == [2, 0, 1]
