"""Atomic file writes: a reader sees the old file or the complete new one, never half of one.

The temporary file is `.<name>.<pid>-<random><suffix>` beside the target. A process killed while
writing leaves it behind; the next write of the same file removes it once that pid is gone.
"""
import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from pipeline.core.errors import PipelineError


def explain(error, path, doing="write"):
    """A one-line PipelineError for an OSError met while `doing` something to `path`."""
    if error.errno == errno.ENOSPC:
        return PipelineError(f"cannot {doing} {path}: the disk is full")
    if error.errno == errno.EDQUOT:
        return PipelineError(f"cannot {doing} {path}: the disk quota is used up")
    if error.errno in (errno.EACCES, errno.EPERM):
        return PipelineError(f"cannot {doing} {path}: permission denied")
    if error.errno == errno.EROFS:
        return PipelineError(f"cannot {doing} {path}: the file system is read-only")
    if error.errno in (errno.EEXIST, errno.ENOTDIR):
        blocking = next((p for p in [*reversed(Path(path).parents)] if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            return PipelineError(f"cannot {doing} {path}: {blocking} is a file, not a folder")
    return PipelineError(f"cannot {doing} {path}: {error.strerror or error}")


def _current_umask():
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


UMASK = _current_umask()   # read once, at import: os.umask can only be read by setting it


def _remove_stale_temporaries(path):
    """Remove temporary files for `path` left by processes that no longer run."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)-[a-z0-9_]{{8}}\.[A-Za-z0-9]+")
    try:
        candidates = [entry for entry in os.scandir(path.parent) if entry.name.startswith(f".{path.name}.")]
    except OSError:
        return
    for entry in candidates:
        match = pattern.fullmatch(entry.name)
        if match and not _alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def _alive(pid):
    try:
        os.kill(pid, 0)   # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:
        return True   # exists, but belongs to someone else
    return True


@contextlib.contextmanager
def atomic_path(path, suffix=".tmp"):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    `suffix` ends the temporary name, for writers that insist on one (Keras wants ".keras").
    The file gets the permissions a plain `open` would give it (not mkstemp's owner-only 0600).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=suffix, dir=path.parent)
        os.fchmod(fd, 0o666 & ~UMASK)
        os.close(fd)
    except OSError as error:
        raise explain(error, path) from None
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as error:
        raise explain(error, path) from None
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path, mode="w", **kwargs):
    """Open a temporary file beside `path` for writing; it replaces `path` when the block ends."""
    with atomic_path(path) as tmp:
        try:
            with open(tmp, mode, **kwargs) as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as error:
            raise explain(error, path) from None


def write_text(path, text):
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_json(path, data):
    write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def save_arrays(path, **arrays):
    """Save numpy arrays as an uncompressed .npz (fast to load), atomically."""
    with atomic_open(path, "wb") as handle:
        np.savez(handle, **arrays)


def load_arrays(path, keys=None):
    """The arrays of an .npz file: all, or only `keys` (the others are not read at all)."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in (data.files if keys is None else keys)}


def replace_folder(built, folder):
    """Put the finished folder `built` in place of `folder` with renames; the old one is removed only
    afterwards. A process killed between the renames leaves it in `previous_folder(folder)`."""
    old = previous_folder(folder)
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    built.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def previous_folder(folder):
    return folder.parent / f".old-{folder.name}"
