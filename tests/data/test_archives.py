"""archives.extract_nested: the real bundle layouts unpack; every kind of hostile archive is refused."""
import gzip
import io
import lzma
import os
import stat
import tarfile
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kaggle_server import expressions_bundle, keypoints_bundle, tar_gz_bytes, zip_bytes
from pipeline.data.archives import ArchiveError, Limits, UnsafeArchiveError, extract_nested
from pipeline.core.errors import PipelineError

# Small limits, so that bombs can be small and the tests fast.
SMALL = Limits(max_members=20, max_total_bytes=1 << 20, max_ratio=50, ratio_floor=64 << 10,
               max_depth=2)
ZEROS = bytes(2 << 20)   # 2 MiB of zeros: deflates about 1000x


@pytest.fixture
def where(tmp_path):
    """An archive path, a destination, and a folder outside it that attacks aim at."""
    outside, dest = tmp_path / "outside", tmp_path / "work" / "dest"
    outside.mkdir()
    dest.mkdir(parents=True)
    return tmp_path, dest, outside


def snapshot(root, skip):
    return {path for path in root.rglob("*") if skip not in path.parents and path != skip}


def write(path, data):
    path.write_bytes(data)
    return path


# --- archive crafting ---------------------------------------------------------------------------

def zip_of(path, *entries):
    """Write a zip of (name or ZipInfo, bytes) entries, as given: zipfile keeps hostile names."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle, warnings.catch_warnings():
        warnings.simplefilter("ignore")   # "Duplicate name": that is the point of some tests
        for info, data in entries:
            bundle.writestr(info, data)
    return path


def zip_info(name, file_type, target=""):
    info = zipfile.ZipInfo(name)
    info.create_system = 3   # Unix, so that the mode in external_attr counts
    info.external_attr = (file_type | 0o777) << 16
    return info, target.encode()


def patch_zip(path, *, flag_bits=None, file_size=None):
    """Overwrite fields in every local and central header (offsets from the zip specification)."""
    data = bytearray(path.read_bytes())
    for signature, flags_at, size_at in ((b"PK\x03\x04", 6, 22), (b"PK\x01\x02", 8, 24)):
        start = data.find(signature)
        while start != -1:
            if flag_bits is not None:
                data[start + flags_at:start + flags_at + 2] = flag_bits.to_bytes(2, "little")
            if file_size is not None:
                data[start + size_at:start + size_at + 4] = file_size.to_bytes(4, "little")
            start = data.find(signature, start + 4)
    path.write_bytes(bytes(data))
    return path


def tar_of(path, *members, mode="w"):
    """Write a tar of (TarInfo, bytes or None) members."""
    with tarfile.open(path, mode) as bundle:
        for member, data in members:
            if data is not None:
                member.size = len(data)
            bundle.addfile(member, io.BytesIO(data) if data is not None else None)
    return path


def tar_member(name, member_type=tarfile.REGTYPE, link=""):
    member = tarfile.TarInfo(name)
    member.type, member.linkname = member_type, link
    return member, (b"x" if member_type == tarfile.REGTYPE else None)


# --- what should work ---------------------------------------------------------------------------

def test_keypoints_bundle_unpacks_its_inner_zips_and_deletes_them(where):
    root, dest, _ = where
    bundle, expected = keypoints_bundle()
    files = extract_nested(write(root / "facial-keypoints-detection.zip", bundle), dest)

    assert [f.relative_to(dest).as_posix() for f in files] == sorted(expected)
    assert {name: (dest / name).read_bytes() for name in expected} == expected
    assert not list(dest.glob("*.zip"))


def test_expressions_bundle_unpacks_the_tar_gz_inside(where):
    root, dest, _ = where
    bundle, expected = expressions_bundle()
    files = extract_nested(write(root / "fer.zip", bundle), dest)

    assert {f.relative_to(dest).as_posix() for f in files} == set(expected)
    assert (dest / "fer2013" / "fer2013.csv").read_bytes() == expected["fer2013/fer2013.csv"]
    assert not (dest / "fer2013.tar.gz").exists()


def test_the_format_comes_from_the_content_not_the_name(where):
    root, dest, _ = where
    archive = write(root / "bundle.download", tar_gz_bytes({"./a/b.csv": b"1,2\n"}))
    assert extract_nested(archive, dest) == [dest / "a" / "b.csv"]


def test_a_gzipped_file_unpacks_beside_itself(where):
    root, dest, _ = where
    archive = write(root / "outer.zip", zip_bytes({"data.csv.gz": gzip.compress(b"a,b\n1,2\n")}))
    assert extract_nested(archive, dest) == [dest / "data.csv"]
    assert (dest / "data.csv").read_bytes() == b"a,b\n1,2\n"


def test_xz_files_and_tar_xz_bundles_unpack(where):
    root, dest, _ = where
    csv = write(root / "fer2013.csv.xz", lzma.compress(b"emotion,pixels,Usage\n"))
    assert extract_nested(csv, dest) == [dest / "fer2013.csv"]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as bundle:
        info = tarfile.TarInfo("fer/new.csv")
        info.size = 4
        bundle.addfile(info, io.BytesIO(b"1,2\n"))
    assert extract_nested(write(root / "bundle.tar.xz", buffer.getvalue()), dest) == [dest / "fer" / "new.csv"]


def test_xz_bombs_are_refused(where):
    root, dest, _ = where
    bomb = write(root / "zeros.csv.xz", lzma.compress(bytes(8 << 20)))
    with pytest.raises(UnsafeArchiveError, match="compression bomb"):
        extract_nested(bomb, dest, limits=SMALL)


def test_small_runs_of_zeros_are_not_bombs(where):
    root, dest, _ = where
    archive = zip_of(root / "a.zip", ("zeros.bin", bytes(60 << 10)))
    assert extract_nested(archive, dest, limits=SMALL) == [dest / "zeros.bin"]


def test_something_else_is_not_an_archive(where):
    root, dest, _ = where
    with pytest.raises(ArchiveError, match="not a zip, tar, gzip or xz archive"):
        extract_nested(write(root / "notes.zip", b"just text\n"), dest)


def test_errors_are_pipeline_errors():
    assert issubclass(UnsafeArchiveError, ArchiveError) and issubclass(ArchiveError, PipelineError)


# --- what must be refused -----------------------------------------------------------------------

def assert_refused(root, dest, archive, member, why, limits=SMALL):
    before = snapshot(root, dest)
    with pytest.raises(UnsafeArchiveError) as refusal:
        extract_nested(archive, dest, limits=limits)
    message = str(refusal.value)
    assert archive.name in message and repr(member) in message and why in message
    assert snapshot(root, dest) == before, "something was written outside dest"
    return message


ZIP_ATTACKS = {
    "absolute path": lambda outside: [(str(outside / "escaped.txt"), b"x")],
    "'..' component": lambda outside: [("../escaped.txt", b"x")],
    "'..' behind a backslash": lambda outside: [("a\\..\\..\\escaped.txt", b"x")],
    "symbolic link": lambda outside: [zip_info("link", stat.S_IFLNK, str(outside)),
                                      ("link/escaped.txt", b"x")],
    "fifo": lambda outside: [zip_info("pipe", stat.S_IFIFO)],
    "device": lambda outside: [zip_info("disk", stat.S_IFBLK)],
    "duplicate": lambda outside: [("a.txt", b"1"), ("a.txt", b"2")],
}
ZIP_REASONS = {
    "absolute path": "absolute path", "'..' component": "'..' component",
    "'..' behind a backslash": "'..' component", "symbolic link": "symbolic link",
    "fifo": "device, fifo or socket", "device": "device, fifo or socket", "duplicate": "appears twice",
}


@pytest.mark.parametrize("attack", ZIP_ATTACKS)
def test_zip_attacks_are_refused(where, attack):
    root, dest, outside = where
    entries = ZIP_ATTACKS[attack](outside)
    bad = entries[-1][0] if attack == "duplicate" else entries[0][0]
    member = bad.filename if isinstance(bad, zipfile.ZipInfo) else bad
    assert_refused(root, dest, zip_of(root / "evil.zip", *entries), member, ZIP_REASONS[attack])


TAR_ATTACKS = {
    "absolute path": lambda outside: [tar_member(str(outside / "escaped.txt"))],
    "'..' component": lambda outside: [tar_member("a/../../escaped.txt")],
    "symbolic link": lambda outside: [tar_member("link", tarfile.SYMTYPE, str(outside)),
                                      tar_member("link/escaped.txt")],
    "hard link": lambda outside: [tar_member("hard", tarfile.LNKTYPE, str(outside / "x"))],
    "device file": lambda outside: [tar_member("null", tarfile.CHRTYPE)],
    "block device": lambda outside: [tar_member("disk", tarfile.BLKTYPE)],
    "fifo": lambda outside: [tar_member("pipe", tarfile.FIFOTYPE)],
    "duplicate": lambda outside: [tar_member("a.txt"), tar_member("a.txt")],
}
TAR_REASONS = {"block device": "device file", "duplicate": "would overwrite"}


@pytest.mark.parametrize("compression", ["w", "w:gz"])
@pytest.mark.parametrize("attack", TAR_ATTACKS)
def test_tar_attacks_are_refused(where, attack, compression):
    root, dest, outside = where
    members = TAR_ATTACKS[attack](outside)
    archive = tar_of(root / "evil.tar", *members, mode=compression)
    member = members[-1 if attack == "duplicate" else 0][0].name
    assert_refused(root, dest, archive, member, TAR_REASONS.get(attack, attack))


def test_an_attack_inside_an_inner_archive_is_refused(where):
    root, dest, outside = where
    inner = tar_gz_bytes({"fine.csv": b"1\n", str(outside / "escaped.txt"): b"x"})
    archive = write(root / "bundle.zip", zip_bytes({"fer2013.tar.gz": inner}))
    message = assert_refused(root, dest, archive, str(outside / "escaped.txt"), "absolute path")
    assert "fer2013.tar.gz" in message


def test_zip_bomb_is_refused_from_its_declared_sizes_before_writing(where):
    root, dest, _ = where
    message = assert_refused(root, dest, zip_of(root / "bomb.zip", ("zeros", ZEROS)), "zeros",
                             "compression bomb")
    assert "declares" in message
    assert not dest.exists() or not any(dest.iterdir())


def test_zip_that_understates_its_size_never_writes_more_than_it_declares(where):
    root, dest, _ = where
    archive = patch_zip(zip_of(root / "liar.zip", ("zeros", ZEROS)), file_size=1000)
    with pytest.raises(ArchiveError):   # zipfile stops at the declared size; the CRC then fails
        extract_nested(archive, dest, limits=SMALL)
    assert all(path.stat().st_size <= 1000 for path in dest.rglob("*") if path.is_file())


def test_encrypted_zip_member_is_refused(where):
    root, dest, _ = where
    archive = patch_zip(zip_of(root / "locked.zip", ("secret.csv", b"1,2\n")), flag_bits=1)
    assert_refused(root, dest, archive, "secret.csv", "is encrypted")


@pytest.mark.parametrize("name, data", [
    ("bomb.gz", gzip.compress(ZEROS)),              # no declared size at all: counted
    ("bomb.tar.gz", tar_gz_bytes({"zeros": ZEROS})),  # the tar header is honest, the ratio is not
])
def test_gzip_bombs_are_stopped_while_writing(where, name, data):
    root, dest, _ = where
    member = "bomb" if name == "bomb.gz" else "zeros"
    assert_refused(root, dest, write(root / name, data), member, "compression bomb")
    assert not any(path.is_file() for path in dest.rglob("*")), "a partial file was left"


def test_too_many_members_are_refused(where):
    root, dest, _ = where
    names = [f"f{i}.csv" for i in range(SMALL.max_members + 1)]
    archive = zip_of(root / "many.zip", *[(name, b"1") for name in names])
    assert_refused(root, dest, archive, names[-1], "limit of 20 members")


def test_too_many_tar_members_are_refused(where):
    root, dest, _ = where
    names = [f"f{i}.csv" for i in range(SMALL.max_members + 1)]
    archive = tar_of(root / "many.tgz", *[tar_member(name) for name in names], mode="w:gz")
    assert_refused(root, dest, archive, names[-1], "limit of 20 members")


def test_declared_total_past_the_limit_is_refused_before_writing(where):
    root, dest, _ = where
    noise = os.urandom(600 << 10)   # incompressible, so only the total is at fault
    archive = zip_of(root / "big.zip", ("a.bin", noise), ("b.bin", noise))
    assert_refused(root, dest, archive, "b.bin", "declared unpacked size")
    assert not any(path.is_file() for path in dest.rglob("*"))


def test_inner_archives_share_one_budget(where):
    root, dest, _ = where
    # 600 KB of '0' and '1': packs about 7x, so each inner zip is small and only the sum is big.
    bits = np.random.default_rng(0).integers(ord("0"), ord("1") + 1, 600 << 10, dtype=np.uint8)
    inners = {f"{n}.zip": zip_bytes({f"{n}.bin": bits.tobytes()}) for n in ("one", "two")}
    archive = write(root / "outer.zip", zip_bytes(inners))
    message = assert_refused(root, dest, archive, "two.bin", "unpacked size past")
    assert "two.zip" in message


def test_archives_nested_too_deep_are_refused(where):
    root, dest, _ = where
    data = b"payload"
    for level in range(SMALL.max_depth + 2):
        data = zip_bytes({f"level{level}.zip" if level else "payload.txt": data})
    with pytest.raises(UnsafeArchiveError, match="nested more than 2 deep"):
        extract_nested(write(root / "deep.zip", data), dest, limits=SMALL)


PARTS = st.sampled_from(["..", ".", "", "a", "b", "\\", "..\\..", "C:", "~", "/"])


@settings(max_examples=60, deadline=None, database=None)
@given(names=st.lists(st.lists(PARTS, min_size=1, max_size=5).map("/".join).filter(bool),
                      min_size=1, max_size=4))
def test_no_member_name_lands_outside_dest(tmp_path_factory, names):
    root = tmp_path_factory.mktemp("fuzz")
    dest = root / "work" / "dest"
    dest.mkdir(parents=True)
    archive = zip_of(root / "fuzz.zip", *[(name, b"x") for name in names])
    before = snapshot(root, dest)
    try:
        files = extract_nested(archive, dest)
    except ArchiveError:
        files = []
    assert snapshot(root, dest) == before
    assert all(dest.resolve() in path.resolve().parents for path in files)
