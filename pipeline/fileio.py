"""Atomic file writes: a reader sees the old file or the complete new one, never half of one."""
import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path

from .errors import PipelineError


def _explain(error, path):
    if error.errno == errno.ENOSPC:
        return PipelineError(f"cannot write {path}: the disk is full")
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PipelineError(f"cannot write {path}: permission denied")
    return PipelineError(f"cannot write {path}: {error.strerror or error}")


@contextlib.contextmanager
def atomic_path(path, suffix=".tmp"):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    `suffix` ends the temporary name, for writers that insist on one (Keras wants ".keras").
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
        os.close(fd)
    except OSError as error:
        raise _explain(error, path) from None
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as error:
        raise _explain(error, path) from None
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
            raise _explain(error, path) from None


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
    import numpy as np

    with atomic_open(path, "wb") as handle:
        np.savez(handle, **arrays)


def load_arrays(path):
    import numpy as np

    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}
