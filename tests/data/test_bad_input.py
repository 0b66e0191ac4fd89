"""Bad input files through the command line: `run.py clean` stops with one line per problem kind
(file, line, example) and exit code 2, prints no traceback and writes nothing; `--skip-bad-rows`
drops bad training rows only.

Each test copies a tiny generated competition into data/raw/<slug>/ of a fresh project, breaks one
thing in one file, and runs `clean` as a user would.
"""
import gzip
import hashlib
import io
import json
import re
import shutil
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.data import sample
from pipeline.core.competitions import EXPRESSIONS, KEYPOINTS
from pipeline.core.fileio import load_arrays
from pipeline.cli import cli

SIZES = sample.SampleSizes(keypoints_train=20, keypoints_test=6, expressions=40)
KP_DIR, EX_DIR = f"data/raw/{KEYPOINTS.slug}", f"data/raw/{EXPRESSIONS.slug}"


@pytest.fixture(scope="module")
def raw_template(tmp_path_factory):
    raw = tmp_path_factory.mktemp("raw")
    for competition in (KEYPOINTS, EXPRESSIONS):
        (raw / competition.slug).mkdir()
        sample.write_sample(competition, raw / competition.slug, seed=5, sizes=SIZES)
    return raw


@pytest.fixture
def root(tmp_path, raw_template):
    """A project whose data/raw/ holds both tiny competitions, as `download` leaves it."""
    shutil.copytree(raw_template, tmp_path / "project" / "data" / "raw")
    return tmp_path / "project"


# --- helpers -------------------------------------------------------------------------------------

def clean(root, task, *options):
    return CliRunner().invoke(cli, ["--root", str(root), "clean", "--task", task, *options])


def snapshot(root):
    """{path: content hash} of everything in data/ and submissions/, except the lock files, which
    every stage creates by design and which hold only the holder's pid."""
    return {str(p.relative_to(root)): hashlib.blake2b(p.read_bytes(), digest_size=16).hexdigest()
            for folder in ("data", "submissions") for p in sorted((root / folder).rglob("*"))
            if p.is_file() and ".locks" not in p.parts}


def temporaries(root):
    return [p for p in root.rglob(".*") if p.is_file() and (p.name.endswith(".tmp") or re.search(r"\.\d+-", p.name))]


def rewrite(root, relative, change):
    path = root / relative
    path.write_bytes(change(path.read_bytes()))


def edit_line(root, relative, line, change):
    """Apply `change` (bytes -> bytes) to 1-based `line` of a file."""
    def apply(data):
        lines = data.split(b"\n")
        lines[line - 1] = change(lines[line - 1])
        return b"\n".join(lines)
    rewrite(root, relative, apply)


def first_line_ending(root, relative, ending):
    lines = (root / relative).read_bytes().split(b"\n")
    return next(i + 1 for i, line in enumerate(lines) if line.endswith(ending))


def set_field(index, value):
    def change(line):
        fields = line.split(b",")
        fields[index] = value
        return b",".join(fields)
    return change


def assert_rejected(root, task, file, line, kind, *options):
    before = snapshot(root)
    result = clean(root, task, *options)
    message = result.output
    assert result.exit_code == 2, message
    assert isinstance(result.exception, SystemExit), result.exception   # raised as a user error, not a crash
    assert "Traceback" not in message
    errors = [line for line in message.splitlines() if line.startswith("Error: ")]   # after any progress line
    assert errors and f"{file}:" in errors[0], message
    assert kind in message, message
    if line is not None:
        assert re.search(rf"\bline (\d+, )*{line}\b", message), message
    assert len(message.splitlines()) <= 11, message
    assert snapshot(root) == before
    assert not temporaries(root)
    return message


# --- one broken file per problem kind ------------------------------------------------------------

def zip_of(data):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("training.csv", data)
    return buffer.getvalue()


HTML = (b'<!DOCTYPE html>\n<html lang="en"><head><title>Sign In | Kaggle</title></head>\n'
        b"<body><p>Please sign in to continue.</p></body></html>\n")
KP_TRAIN, KP_TEST, KP_LOOKUP = f"{KP_DIR}/training.csv", f"{KP_DIR}/test.csv", f"{KP_DIR}/IdLookupTable.csv"
EX_FER = f"{EX_DIR}/fer2013.csv"

# (name, file, corruption, line reported, kind reported)
KEYPOINT_CASES = [
    ("wrong header", KP_TRAIN, lambda r: edit_line(r, KP_TRAIN, 1, lambda l: l.replace(b"Image", b"Img")),
     1, "missing column(s) Image"),
    ("no header", KP_TRAIN, lambda r: rewrite(r, KP_TRAIN, lambda d: d.split(b"\n", 1)[1]), 1, "no header"),
    ("duplicated column", KP_TRAIN, lambda r: edit_line(r, KP_TRAIN, 1, lambda l: l + b",Image"),
     1, "duplicated column name(s) 'Image'"),
    ("too few pixels", KP_TRAIN, lambda r: edit_line(r, KP_TRAIN, 4, lambda l: l.rsplit(b" ", 1)[0]),
     4, "pixels wrong count"),
    ("too many pixels", KP_TRAIN, lambda r: edit_line(r, KP_TRAIN, 5, lambda l: l + b" 17"), 5, "pixels wrong count"),
    ("non-numeric pixel", KP_TRAIN, lambda r: edit_line(r, KP_TRAIN, 6, lambda l: l.replace(b" ", b" 1x", 1)),
     6, "pixels non-numeric"),
    ("pixel above 255", KP_TRAIN, lambda r: edit_line(r, KP_TRAIN, 7, lambda l: l + b"999"), 7, "pixels out of range"),
    ("negative pixel", KP_TRAIN, lambda r: edit_line(r, KP_TRAIN, 7, lambda l: l.replace(b" ", b" -", 1)),
     7, "pixels non-numeric"),
    ("empty pixel field", KP_TRAIN, lambda r: edit_line(r, KP_TRAIN, 3, set_field(30, b"")), 3, "pixels empty"),
    ("NUL byte in a row", KP_TRAIN, lambda r: edit_line(r, KP_TRAIN, 3, lambda l: l[:-10] + b"\x00" + l[-9:]),
     3, "pixels non-numeric"),
    ("non-UTF-8 byte in a row", KP_TRAIN, lambda r: edit_line(r, KP_TRAIN, 3, lambda l: l[:-1] + b"\xe9"),
     3, "pixels non-numeric"),
    ("keypoint outside the image", KP_TRAIN, lambda r: edit_line(r, KP_TRAIN, 8, set_field(0, b"150.5")),
     8, "keypoint outside the 96x96 image"),
    ("negative keypoint", KP_TRAIN, lambda r: edit_line(r, KP_TRAIN, 8, set_field(1, b"-3")),
     8, "keypoint outside the 96x96 image"),
    ("non-numeric keypoint", KP_TRAIN, lambda r: edit_line(r, KP_TRAIN, 9, set_field(0, b"abc")),
     9, "non-numeric keypoint"),
    ("too many fields", KP_TRAIN, lambda r: edit_line(r, KP_TRAIN, 4, lambda l: l + b",extra"),
     4, "too many fields"),
    ("too few fields", KP_TRAIN, lambda r: edit_line(r, KP_TRAIN, 5, lambda l: l.split(b",", 1)[1]),
     5, "too few fields"),
    ("truncated last line", KP_TRAIN, lambda r: rewrite(r, KP_TRAIN, lambda d: d[:-5000]),
     SIZES.keypoints_train + 1, "row cut off at the end of the file"),
    ("file cut inside the keypoints", KP_TRAIN, lambda r: rewrite(r, KP_TRAIN, lambda d: d[:d.index(b"\n", 1000) + 60]),
     3, "row cut off at the end of the file"),
    ("unclosed quote", KP_TRAIN, lambda r: edit_line(r, KP_TRAIN, 6, lambda l: l.replace(b",", b',"', 1)),
     6, "never closed"),
    ("quote inside a field", KP_TRAIN, lambda r: edit_line(r, KP_TRAIN, 6, lambda l: l.replace(b" ", b' 1"2 ', 1)),
     6, 'a quote (") inside a field'),
    ("only the header", KP_TRAIN, lambda r: rewrite(r, KP_TRAIN, lambda d: d.split(b"\n", 1)[0] + b"\n"),
     None, "no usable training rows"),
    ("empty file", KP_TRAIN, lambda r: rewrite(r, KP_TRAIN, lambda d: b""), None, "the file is empty"),
    ("only blank lines", KP_TRAIN, lambda r: rewrite(r, KP_TRAIN, lambda d: b"\r\n \n\n"), None, "the file is empty"),
    ("zip renamed .csv", KP_TRAIN, lambda r: rewrite(r, KP_TRAIN, zip_of), 1, "zip archive"),
    ("gzip renamed .csv", KP_TRAIN, lambda r: rewrite(r, KP_TRAIN, gzip.compress), 1, "gzip-compressed"),
    ("HTML page saved as CSV", KP_TRAIN, lambda r: rewrite(r, KP_TRAIN, lambda d: HTML), 1, "web page (HTML)"),
    ("JSON error saved as CSV", KP_TRAIN, lambda r: rewrite(r, KP_TRAIN, lambda d: b'{"code":403,"message":"Forbidden"}'),
     1, "looks like JSON"),
    ("binary garbage", KP_TRAIN, lambda r: rewrite(r, KP_TRAIN, lambda d: np.random.default_rng(0).bytes(5000)),
     1, "binary data"),
    ("UTF-16 text", KP_TRAIN, lambda r: rewrite(r, KP_TRAIN, lambda d: d.decode().encode("utf-16")), 1, "UTF-16"),
    ("test: duplicated ImageId", KP_TEST, lambda r: edit_line(r, KP_TEST, 4, set_field(0, b"1")),
     4, "duplicated ImageId"),
    ("test: non-integer ImageId", KP_TEST, lambda r: edit_line(r, KP_TEST, 3, set_field(0, b"two")),
     3, "non-integer ImageId"),
    ("test: bad pixels", KP_TEST, lambda r: edit_line(r, KP_TEST, 3, lambda l: l + b" 1"), 3, "pixels wrong count"),
    ("test: no rows", KP_TEST, lambda r: rewrite(r, KP_TEST, lambda d: b"ImageId,Image\n"), None, "no test rows"),
    ("lookup: image test.csv lacks", KP_LOOKUP, lambda r: edit_line(r, KP_LOOKUP, 5, set_field(1, b"999")),
     5, "ImageId not in test.csv"),
    ("lookup: unknown FeatureName", KP_LOOKUP, lambda r: edit_line(r, KP_LOOKUP, 3, set_field(2, b"nose_x")),
     3, "unknown FeatureName"),
    ("lookup: duplicated RowId", KP_LOOKUP, lambda r: edit_line(r, KP_LOOKUP, 4, set_field(0, b"1")),
     4, "duplicated RowId"),
]

EXPRESSION_CASES = [
    ("wrong header", EX_FER, lambda r: edit_line(r, EX_FER, 1, lambda l: b"emotion,pixel,Usage"),
     1, "missing column(s) pixels"),
    ("emotion outside 0..6", EX_FER, lambda r: edit_line(r, EX_FER, 3, set_field(0, b"9")), 3, "emotion outside 0..6"),
    ("non-integer emotion", EX_FER, lambda r: edit_line(r, EX_FER, 4, set_field(0, b"happy")), 4, "non-integer emotion"),
    ("unknown Usage", EX_FER, lambda r: edit_line(r, EX_FER, 5, set_field(2, b"Train")), 5, "unknown Usage"),
    ("too few pixels", EX_FER, lambda r: edit_line(r, EX_FER, 6, lambda l: re.sub(rb" \d+,", b",", l)),
     6, "pixels wrong count"),
    ("too few fields", EX_FER, lambda r: edit_line(r, EX_FER, 7, lambda l: l.rsplit(b",", 1)[0]), 7, "too few fields"),
    ("truncated last line", EX_FER, lambda r: rewrite(r, EX_FER, lambda d: d[:-300]),
     SIZES.expressions + 1, "row cut off at the end of the file"),
]


@pytest.mark.parametrize("name, file, corrupt, line, kind", KEYPOINT_CASES, ids=[c[0] for c in KEYPOINT_CASES])
def test_bad_keypoints_file_is_rejected(root, name, file, corrupt, line, kind):
    corrupt(root)
    assert_rejected(root, "keypoints", file.rsplit("/", 1)[1], line, kind)


@pytest.mark.parametrize("name, file, corrupt, line, kind", EXPRESSION_CASES, ids=[c[0] for c in EXPRESSION_CASES])
def test_bad_expressions_file_is_rejected(root, name, file, corrupt, line, kind):
    corrupt(root)
    assert_rejected(root, "expressions", file.rsplit("/", 1)[1], line, kind)


def test_ferplus_votes_are_checked(root):
    edit_line(root, f"{EX_DIR}/fer2013new.csv", 3, set_field(2, b"many"))
    assert_rejected(root, "expressions", "fer2013new.csv", 3, "non-integer neutral votes", "--labels", "ferplus")


def test_ferplus_file_must_align_with_fer2013(root):
    rewrite(root, f"{EX_DIR}/fer2013new.csv", lambda d: d.rsplit(b"\n", 2)[0] + b"\n")
    assert_rejected(root, "expressions", "fer2013new.csv", None, "the files must align row by row", "--labels", "ferplus")


def test_each_problem_kind_is_one_line_with_at_most_ten_line_numbers(root):
    for line in range(2, SIZES.keypoints_train + 2):
        edit_line(root, KP_TRAIN, line, lambda l: l + b" 1")
    edit_line(root, KP_TRAIN, 3, set_field(0, b"abc"))
    message = assert_rejected(root, "keypoints", "training.csv", 2, "pixels wrong count")
    assert "pixels wrong count on line 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 and 10 more (line 2: 9217 values" in message
    assert "non-numeric keypoint on line 3 " in message
    assert message.splitlines()[-1] == "Fix the file, or pass --skip-bad-rows to drop bad training rows."


def test_line_numbers_count_blank_lines_and_quoted_newlines(root):
    rewrite(root, KP_LOOKUP, lambda d: d.replace(b"\n2,", b"\n\n\n2,", 1))           # two blank lines after line 2
    edit_line(root, KP_LOOKUP, 8, set_field(2, b'"nose\ntip"'))                      # a field on lines 8 and 9
    edit_line(root, KP_LOOKUP, 11, set_field(2, b"chin"))                             # the 8th row, on line 11
    message = assert_rejected(root, "keypoints", "IdLookupTable.csv", 8, "unknown FeatureName")
    assert "unknown FeatureName on line 8, 11 " in message


# --- files that look odd but are valid -----------------------------------------------------------

VALID_VARIANTS = [
    ("CRLF line endings", lambda d: d.replace(b"\n", b"\r\n")),
    ("CR line endings", lambda d: d.replace(b"\n", b"\r")),
    ("UTF-8 byte-order mark", lambda d: b"\xef\xbb\xbf" + d),
    ("Excel quoting", lambda d: b"\r\n".join(b",".join(b'"%s"' % f for f in line.split(b",")) if line else line
                                             for line in d.split(b"\n"))),
    ("blank lines and no final newline", lambda d: d.replace(b"\n", b"\n\n", 3).rstrip(b"\n")),
    ("NaN for missing keypoints", lambda d: d.replace(b",,", b",NaN,")),
]


@pytest.mark.parametrize("name, change", VALID_VARIANTS, ids=[v[0] for v in VALID_VARIANTS])
def test_valid_variants_are_accepted(root, name, change):
    for file in ("training.csv", "test.csv", "IdLookupTable.csv"):
        rewrite(root, f"{KP_DIR}/{file}", change)
    result = clean(root, "keypoints")
    assert result.exit_code == 0, result.output
    assert f"train_rows={SIZES.keypoints_train}," in result.output
    arrays = load_arrays(root / "data" / "interim" / KEYPOINTS.slug / "clean.npz")
    assert arrays["train_images"].shape == (SIZES.keypoints_train, 96, 96)
    assert arrays["test_ids"].tolist() == list(range(1, SIZES.keypoints_test + 1))


def test_test_images_no_lookup_row_asks_for_are_kept_and_counted(root):
    """Decision: an extra test image costs one prediction and changes no submission row, so it is
    kept; the count in the summary says the files may come from different versions."""
    def add_image(data):
        lines = data.rstrip(b"\n").split(b"\n")
        return b"\n".join(lines + [b"99," + lines[1].split(b",", 1)[1]]) + b"\n"
    rewrite(root, KP_TEST, add_image)
    result = clean(root, "keypoints")
    assert result.exit_code == 0, result.output
    assert "test_images_not_in_lookup=1" in result.output
    assert f"test_rows={SIZES.keypoints_test + 1}," in result.output


# --- --skip-bad-rows ------------------------------------------------------------------------------

def manifest_summary(root, competition):
    return json.loads((root / "data" / "interim" / competition.slug / "clean.manifest.json").read_text())["summary"]


def test_skip_bad_rows_drops_training_rows_and_records_them(root):
    edit_line(root, KP_TRAIN, 3, lambda l: l + b" 1")                    # wrong pixel count
    edit_line(root, KP_TRAIN, 5, set_field(0, b"abc"))                   # non-numeric keypoint
    edit_line(root, KP_TRAIN, 6, lambda l: l + b",extra")                # too many fields
    rewrite(root, KP_TRAIN, lambda d: d[:-2000])                         # last row cut off
    assert clean(root, "keypoints").exit_code == 2

    result = clean(root, "keypoints", "--skip-bad-rows")
    assert result.exit_code == 0, result.output
    assert "skipped_bad_rows=4" in result.output
    summary = manifest_summary(root, KEYPOINTS)
    assert summary["skipped_bad_rows"] == 4 and summary["train_rows"] == SIZES.keypoints_train - 4
    assert summary["skipped_by_kind"] == {"pixels wrong count": 1, "non-numeric keypoint": 1, "too many fields": 1,
                                          "row cut off at the end of the file (an interrupted download?)": 1}
    arrays = load_arrays(root / "data" / "interim" / KEYPOINTS.slug / "clean.npz")
    assert len(arrays["train_images"]) == SIZES.keypoints_train - 4
    assert len(arrays["test_images"]) == SIZES.keypoints_test


def test_skip_bad_rows_never_drops_a_test_row(root):
    edit_line(root, KP_TRAIN, 3, lambda l: l + b" 1")
    edit_line(root, KP_TEST, 4, lambda l: l + b" 1")
    message = assert_rejected(root, "keypoints", "test.csv", 4, "pixels wrong count", "--skip-bad-rows")
    assert "Test rows cannot be skipped" in message


def test_skip_bad_rows_drops_fer2013_training_rows_only(root):
    training = first_line_ending(root, EX_FER, b",Training")
    edit_line(root, EX_FER, training, set_field(0, b"8"))
    result = clean(root, "expressions", "--skip-bad-rows")
    assert result.exit_code == 0, result.output
    assert manifest_summary(root, EXPRESSIONS)["skipped_bad_rows"] == 1

    public = first_line_ending(root, EX_FER, b",PublicTest")
    edit_line(root, EX_FER, public, lambda l: l.replace(b",", b",x", 1))
    before = snapshot(root)
    result = clean(root, "expressions", "--skip-bad-rows")
    assert result.exit_code == 2 and f"pixels non-numeric on line {public} " in result.output
    assert "Only Training rows can be skipped" in result.output
    # The previous outputs stay as they were; only their manifest is gone (the stage chain removes a
    # stage's manifest before running it), so the next clean runs again rather than trusting them.
    manifest = f"data/interim/{EXPRESSIONS.slug}/clean.manifest.json"
    after = snapshot(root)
    assert manifest not in after or after[manifest] == before[manifest]
    assert {k: v for k, v in after.items() if k != manifest} == {k: v for k, v in before.items() if k != manifest}
    assert not temporaries(root)


def test_skip_bad_rows_keeps_a_row_whose_usage_is_unreadable(root):
    """A cut-off last row of fer2013.csv has lost its Usage: it may be a test row, so it cannot go."""
    rewrite(root, EX_FER, lambda d: d[:-300])
    assert_rejected(root, "expressions", "fer2013.csv", SIZES.expressions + 1, "row cut off", "--skip-bad-rows")
