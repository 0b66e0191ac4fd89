"""Safe extraction of downloaded bundles: .zip, .tar, .tar.gz / .tgz / .tar.xz, .gz and .xz, nested.

A bundle comes from the network, so every member is hostile until checked. We never call
`extractall`: each member's name is checked (no absolute path, no `..`), only regular files and
folders are created (no links, devices or fifos), files are created fresh (never overwritten), and
every byte written is counted against `Limits`, because the sizes an archive declares can lie.
"""
import gzip
import lzma
import re
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.errors import PipelineError

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tgz", ".gz", ".xz")  # ".tar.gz" ends with ".gz"
_CHUNK = 1 << 20
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


class ArchiveError(PipelineError):
    """An archive is corrupt or not an archive at all."""


class UnsafeArchiveError(ArchiveError):
    """An archive member could escape the destination, is not a plain file or folder, or is a bomb."""


@dataclass(frozen=True)
class Limits:
    """Bounds on what one bundle may unpack to, nested archives included.

    The real bundles sit far inside them: each unpacks to well under 1 GB, at ratios below 10.
    """
    max_members: int = 1_000
    max_total_bytes: int = 4 << 30
    max_ratio: float = 100.0        # unpacked / packed bytes, per archive and per zip member
    ratio_floor: int = 16 << 20     # below this output the ratio says nothing: zeros pack 1000x
    max_depth: int = 3              # archives inside archives inside ...


DEFAULT_LIMITS = Limits()


def is_archive(path):
    """Whether `path` is named like an archive that `extract_nested` unpacks."""
    return Path(path).name.lower().endswith(ARCHIVE_SUFFIXES)


def extract_nested(archive: Path, dest: Path, *, limits: Limits = DEFAULT_LIMITS) -> list[Path]:
    """Unpack `archive` into `dest`, then every archive that came out of it, recursively.

    Each inner archive is unpacked beside itself and then deleted; `archive` itself is left alone.
    Returns the files finally extracted, sorted. Raises UnsafeArchiveError (naming the archive,
    the member and why) rather than write anything outside `dest` or past `limits`; a refusal
    may leave earlier members in `dest`, so extract into a staging folder you can discard.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    budget = _Budget(limits)
    return sorted(_extract_recursively(archive, dest, budget, depth=0))


def _extract_recursively(archive, dest, budget, depth):
    if depth > budget.limits.max_depth:
        raise UnsafeArchiveError(
            f"refusing to extract {archive}: archives are nested more than "
            f"{budget.limits.max_depth} deep")
    files = set()
    for path in _extract_one(archive, dest, budget):
        if is_archive(path):
            try:
                files |= _extract_recursively(path, path.parent, budget, depth + 1)
            except ArchiveError as error:
                raise type(error)(f"{error} [{path.name} came out of {archive}]") from None
            path.unlink()
        else:
            files.add(path)
    return files


def _extract_one(archive, dest, budget):
    """Unpack one archive, its format told by its first bytes rather than by its name."""
    meter = _Meter(archive, budget)
    with open(archive, "rb") as handle:
        head = handle.read(262)
    try:
        if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            return _extract_zip(archive, dest, meter)
        for magic, stream in COMPRESSED.items():
            if head.startswith(magic):
                if _is_compressed_tar(archive, stream):
                    return _extract_tar(archive, dest, meter)
                return _extract_compressed(archive, dest, meter, stream)
        if head[257:262] == b"ustar":
            return _extract_tar(archive, dest, meter)
    except (zipfile.BadZipFile, tarfile.TarError, gzip.BadGzipFile, lzma.LZMAError, zlib.error, EOFError) as error:
        raise ArchiveError(f"{archive} is corrupt: {error}") from None
    raise ArchiveError(f"{archive} is not a zip, tar, gzip or xz archive")


# First bytes of a compressed file -> how to read it.
COMPRESSED = {b"\x1f\x8b": gzip.open, b"\xfd7zXZ\x00": lzma.open}


def _is_compressed_tar(archive, stream):
    """A .tar.gz / .tar.xz rather than a single compressed file such as data.csv.gz."""
    if archive.name.lower().endswith((".tar.gz", ".tgz", ".tar.xz", ".txz")):
        return True
    # Not tarfile.open(): it takes a stream of zeros for an empty tar.
    with stream(archive) as source:
        return source.read(512)[257:262] == b"ustar"


# --- the three formats ------------------------------------------------------------------------

def _extract_zip(archive, dest, meter):
    with zipfile.ZipFile(archive) as bundle:
        members = bundle.infolist()
        # The central directory lists everything up front, so judge it all before writing a byte.
        targets = [_check_zip_member(archive, dest, member, meter) for member in members]
        _check_unique(archive, members, targets)
        _check_declared_total(archive, members, meter)
        files = []
        for member, target in zip(members, targets):
            if member.is_dir():
                _make_folder(archive, member.filename, target)
                continue
            with bundle.open(member) as source:
                _write(archive, member.filename, source, target, meter, declared=member.file_size)
            files.append(target)
        return files


def _check_zip_member(archive, dest, member, meter):
    name = member.filename
    meter.count_member(name)
    target = _target(archive, dest, name, is_folder=member.is_dir())
    # Unix file type bits, when the archiver recorded any (many record permissions alone).
    kind = stat.S_IFMT(member.external_attr >> 16)
    if kind == stat.S_IFLNK:
        raise _refuse(archive, name, "is a symbolic link")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise _refuse(archive, name, "is a device, fifo or socket, not a plain file")
    if member.flag_bits & 0x1:
        raise _refuse(archive, name, "is encrypted")
    if not member.is_dir() and target.exists():
        raise _refuse(archive, name, "would overwrite an existing file")
    limits = meter.budget.limits
    if member.file_size > max(limits.ratio_floor, limits.max_ratio * member.compress_size):
        raise _refuse(archive, name, f"declares {member.file_size} bytes packed into "
                                     f"{member.compress_size}: a compression bomb")
    return target


def _check_unique(archive, members, targets):
    seen = set()
    for member, target in zip(members, targets):
        if not member.is_dir() and target in seen:
            raise _refuse(archive, member.filename, "appears twice")
        seen.add(target)


def _check_declared_total(archive, members, meter):
    declared = meter.budget.bytes_written
    for member in members:
        declared += member.file_size
        if declared > meter.budget.limits.max_total_bytes:
            raise _refuse(archive, member.filename, "takes the declared unpacked size past "
                                                    f"{meter.budget.limits.max_total_bytes} bytes")


def _extract_tar(archive, dest, meter):
    files = []
    with tarfile.open(archive, "r:*") as bundle:
        # Headers are read one at a time as the stream is unpacked, so each is judged as it comes.
        for member in bundle:
            meter.count_member(member.name)
            target = _target(archive, dest, member.name, is_folder=member.isdir())
            if member.isdir():
                _make_folder(archive, member.name, target)
            elif member.isreg():
                with bundle.extractfile(member) as source:
                    _write(archive, member.name, source, target, meter, declared=member.size)
                files.append(target)
            else:
                raise _refuse(archive, member.name, _tar_kind(member))
    return files


def _tar_kind(member):
    if member.issym():
        return "is a symbolic link"
    if member.islnk():
        return "is a hard link"
    if member.ischr() or member.isblk():
        return "is a device file"
    if member.isfifo():
        return "is a fifo"
    return f"has unsupported tar type {member.type!r}"


def _extract_compressed(archive, dest, meter, stream):
    """One gzipped or xz-compressed file (data.csv.gz -> data.csv)."""
    # The name stored inside a gzip header is the sender's choice; ours comes from the file name.
    suffix = next((s for s in (".gz", ".xz") if archive.name.lower().endswith(s)), None)
    name = archive.name[:-len(suffix)] if suffix else archive.name + ".out"
    meter.count_member(name)
    target = _target(archive, dest, name, is_folder=False)
    with stream(archive) as source:
        _write(archive, name, source, target, meter, declared=None)
    return [target]


# --- checks shared by all formats -------------------------------------------------------------

def _refuse(archive, member, why):
    # repr() keeps control characters in a hostile name from reaching the terminal raw.
    return UnsafeArchiveError(f"refusing to extract {archive}: member {member!r} {why}")


def _target(archive, dest, name, is_folder):
    """Where member `name` goes inside `dest`; None for a folder entry naming `dest` itself."""
    if "\x00" in name:
        raise _refuse(archive, name, "has a NUL byte in its name")
    posix = name.replace("\\", "/")     # a Windows archiver's separator is a separator here too
    if posix.startswith("/") or _WINDOWS_DRIVE.match(posix):
        raise _refuse(archive, name, "has an absolute path")
    parts = [part for part in posix.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _refuse(archive, name, "has a '..' component")
    if not parts:
        if is_folder:
            return None
        raise _refuse(archive, name, "has an empty name")
    target = dest.joinpath(*parts)
    # Belt and braces: we never create links, but a folder in dest might already be one.
    if not target.resolve().is_relative_to(dest.resolve()):
        raise _refuse(archive, name, "would land outside the destination")
    return target


def _make_folder(archive, name, target):
    if target is None:
        return
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as error:   # e.g. a file of that name came first
        raise ArchiveError(f"cannot extract {name!r} from {archive}: {error.strerror}") from None


def _write(archive, name, source, target, meter, declared):
    """Copy a member into a new file, counting bytes as they come rather than trusting headers."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        out = open(target, "xb")        # "x": a second member with the same name cannot overwrite
    except FileExistsError:
        raise _refuse(archive, name, "appears twice or would overwrite an existing file") from None
    except OSError as error:
        raise ArchiveError(f"cannot extract {name!r} from {archive}: {error.strerror}") from None
    with out:
        try:
            written = 0
            while chunk := source.read(_CHUNK):
                written += len(chunk)
                if declared is not None and written > declared:
                    raise _refuse(archive, name, f"holds more than the {declared} bytes it declares")
                meter.add(name, len(chunk))
                out.write(chunk)
        except BaseException:
            out.close()
            target.unlink(missing_ok=True)  # never leave a truncated file that looks complete
            raise


@dataclass
class _Budget:
    """What the whole nested extraction has used so far, so inner archives cannot multiply it."""
    limits: Limits
    members: int = 0
    bytes_written: int = 0


class _Meter:
    """Counts one archive's output against the shared budget and the archive's own ratio cap."""

    def __init__(self, archive, budget):
        self.archive, self.budget = archive, budget
        limits = budget.limits
        self.ratio_cap = max(limits.ratio_floor, limits.max_ratio * archive.stat().st_size)
        self.written = 0

    def count_member(self, name):
        self.budget.members += 1
        if self.budget.members > self.budget.limits.max_members:
            raise _refuse(self.archive, name,
                          f"is past the limit of {self.budget.limits.max_members} members")

    def add(self, name, size):
        self.written += size
        self.budget.bytes_written += size
        if self.budget.bytes_written > self.budget.limits.max_total_bytes:
            raise _refuse(self.archive, name, "takes the unpacked size past "
                                              f"{self.budget.limits.max_total_bytes} bytes")
        if self.written > self.ratio_cap:
            raise _refuse(self.archive, name, f"expands the archive more than "
                                              f"{self.budget.limits.max_ratio:g}x: a compression bomb")
