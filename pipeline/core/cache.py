"""Stage cache: a manifest per stage output records the hashes of its inputs, its parameters and the
hashes of what it wrote. A stage is skipped only when all three still match; any output whose content
no longer matches its recorded hash (edited, truncated, half-written) makes the stage run again.

The manifest is written last, after every output is in place, so an interrupted stage never leaves a
manifest that vouches for partial output.
"""
import contextlib
import fcntl
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core.errors import PipelineError
from pipeline.core.fileio import explain, read_json, write_json

HASH_BLOCK = 1 << 20


def digest(path):
    """Content hash of a file (blake2b, 16 bytes), read in 1 MiB blocks."""
    hasher = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as handle:
            while block := handle.read(HASH_BLOCK):
                hasher.update(block)
    except OSError as error:
        raise explain(error, path, "read") from None
    return hasher.hexdigest()


def normalise(params):
    """Parameters as JSON would store them, so a fresh dict compares equal to a loaded one."""
    return json.loads(json.dumps(params, sort_keys=True, default=str))


def params_hash(params, length=8):
    return hashlib.blake2b(json.dumps(normalise(params), sort_keys=True).encode(), digest_size=8).hexdigest()[:length]


@dataclass
class Cache:
    root: Path
    _seen: dict = field(default_factory=dict, repr=False)

    def _key(self, path):
        path = Path(path)
        try:
            return str(path.resolve().relative_to(self.root.resolve()))
        except ValueError:
            return str(path.resolve())

    def digests(self, paths):
        """{path relative to the root: content hash}. Hashes are remembered for files whose size and
        modification time have not changed since this process hashed them (never across processes)."""
        result = {}
        for path in sorted(map(Path, paths)):
            stat = path.stat()
            key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
            if key not in self._seen:
                self._seen[key] = digest(path)
            result[self._key(path)] = self._seen[key]
        return result

    def fresh(self, manifest, inputs, params):
        """The recorded summary if `manifest` still vouches for its outputs, else None."""
        manifest = Path(manifest)
        if not manifest.exists():
            return None
        try:
            record = read_json(manifest)
        except (OSError, ValueError):
            return None
        if record.get("params") != normalise(params):
            return None
        if record.get("inputs") != self.digests(inputs):
            return None
        for key, recorded in record.get("outputs", {}).items():
            path = self.root / key if not os.path.isabs(key) else Path(key)
            if not path.exists() or self.digests([path])[self._key(path)] != recorded:
                return None
        return record.get("summary", {})

    def record(self, manifest, stage, inputs, params, outputs, summary, input_digests=None):
        """Write the manifest. Pass `input_digests` taken before the stage ran, so that an input
        changed while it ran is not recorded as the one it read."""
        write_json(manifest, {
            "stage": stage,
            "params": normalise(params),
            "inputs": input_digests if input_digests is not None else self.digests(inputs),
            "outputs": self.digests(outputs),
            "summary": normalise(summary),
            "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
        })


@contextlib.contextmanager
def stage_lock(path, wait_seconds=None, on_wait=None):
    """Hold an exclusive lock on `path` while a stage writes, so two runs never interleave writes.

    Waits for another holder up to `wait_seconds` (None: forever), telling `on_wait` once.
    """
    if wait_seconds is None:
        try:
            wait_seconds = float(os.environ.get("FACES_LOCK_WAIT", "inf"))
        except ValueError:
            raise PipelineError(f"FACES_LOCK_WAIT={os.environ['FACES_LOCK_WAIT']!r}: expected a number of seconds") from None
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")
    except OSError as error:
        raise explain(error, path, "create the lock file") from None
    with handle:
        deadline = time.monotonic() + wait_seconds
        told = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                if not told and on_wait:
                    on_wait(holder)
                    told = True
                if time.monotonic() >= deadline:
                    raise PipelineError(f"{holder} is working on this stage ({path.name}); "
                                        "try again when it ends") from None
                time.sleep(0.2)
            except OSError as error:   # e.g. a network file system without locks
                raise explain(error, path, "lock") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"run.py (pid {os.getpid()})")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
