"""clean: parse and validate the raw CSVs into arrays (data/interim/<slug>/).

Keypoints keep NaN for missing targets (the mask) unless `dropna`; expressions are split by Usage and
labelled with FER2013's emotions or FERPlus's votes (Training: the most voted emotion and the vote
distribution; test: FERPlus's own majority rule, see `ferplus_test_labels`). Bad rows stop the stage with one line per
problem kind (file, line, example), or are dropped with `skip_bad_rows` (never test rows: a
submission needs every one of them). Keypoints test images that no IdLookupTable row asks for are kept
(predicted, never submitted) and counted as `test_images_not_in_lookup`; a lookup row asking for an
image test.csv lacks stops the stage.
"""
import numpy as np
import pandas as pd

from pipeline.core import defaults
from pipeline.core.competitions import (
    EXPRESSIONS, EXPRESSIONS_HEADER, FER2013_CLASSES, FERPLUS_CLASSES, FERPLUS_VOTE_COLUMNS, KEYPOINT_COLUMNS,
    KEYPOINTS, USAGES,
)
from pipeline.core.errors import BadInputError
from pipeline.core.fileio import save_arrays, write_json, write_text
from pipeline.core.layout import CLEAN_ARRAYS, LOOKUP, META, TEST_IDS
from pipeline.data.csvfiles import Problems, read_csv
from pipeline.data.pixels import parse_pixel_strings

MISSING = ("", "nan", "NaN", "NA")   # a missing keypoint: empty as Kaggle writes it, or pandas' spellings
SKIP_HINT = "Fix the file, or pass --skip-bad-rows to drop bad training rows."


def run(competition, raw, out, dropna=False, labels=defaults.LABELS, skip_bad_rows=False):
    """Clean the raw files of `competition` from `raw` into `out`; return a summary dict."""
    if competition.task == "keypoints":
        return clean_keypoints(raw, out, dropna=dropna, skip_bad_rows=skip_bad_rows)
    return clean_expressions(raw, out, labels=labels, skip_bad_rows=skip_bad_rows)


# --- shared checks -------------------------------------------------------------------------------

def _parse_images(frame, column, size, problems):
    parsed = parse_pixel_strings(frame[column].tolist(), size * size)
    for row, (kind, example) in sorted(parsed.problems.items()):
        problems.add(f"pixels {kind}", row, example)
    images = np.zeros((len(frame), size, size), np.uint8)
    images[parsed.good] = parsed.pixels.reshape(-1, size, size)
    return images


def _integers(frame, column, problems, low=None, high=None, what="value"):
    text = frame[column].str.strip()
    numbers = np.full(len(frame), -1, np.int64)
    valid = text.str.fullmatch(r"[+-]?[0-9]{1,18}").to_numpy()
    numbers[valid] = text[valid].astype(np.int64)
    problems.add_many(f"non-integer {what}", np.flatnonzero(~valid), lambda r: repr(frame[column].iat[r]))
    lowest = -np.inf if low is None else low
    highest = np.inf if high is None else high
    outside = valid & ((numbers < lowest) | (numbers > highest))
    problems.add_many(f"{what} outside {low}..{high}", np.flatnonzero(outside), lambda r: numbers[r])
    return numbers


def _duplicates(ids, problems, what):
    seen = {}
    for row, value in enumerate(ids.tolist()):
        if value in seen:
            problems.add(f"duplicated {what}", row, f"{value} also on line {seen[value] + 2}")
        else:
            seen[value] = row


def _drop_bad(frame, problems, skip_bad_rows):
    """Rows to keep: all when clean; raise on problems unless skipping is allowed."""
    if problems and not skip_bad_rows:
        problems.raise_if_any(SKIP_HINT)
    keep = np.ones(len(frame), bool)
    keep[list(problems.rows)] = False
    return keep


def _check_test(problems):
    """Test rows are never dropped: every one of them needs a prediction."""
    problems.raise_if_any("Test rows cannot be skipped: every one needs a prediction in the submission.")


# --- keypoints -----------------------------------------------------------------------------------

def clean_keypoints(raw, out, dropna=False, skip_bad_rows=False):
    path = raw / "training.csv"
    frame = read_csv(path, required=KEYPOINT_COLUMNS + ("Image",))
    problems = Problems(path, frame)
    keypoints = _keypoint_values(frame, problems)
    images = _parse_images(frame, "Image", KEYPOINTS.image_size, problems)
    keep = _drop_bad(frame, problems, skip_bad_rows)
    skipped = problems.summary()
    complete = ~np.isnan(keypoints).any(axis=1)
    valid_rows = int(keep.sum())
    if dropna:
        keep &= complete
    if not keep.any():
        raise BadInputError(f"{path}: no usable training rows" + (" (with --dropna: no complete rows)" if dropna else "")
                            + (f"\n{problems.report()}" if problems else ""))

    test_images, test_ids = _keypoints_test(raw / "test.csv")
    lookup = _lookup_table(raw / "IdLookupTable.csv", set(test_ids.tolist()))

    save_arrays(out / CLEAN_ARRAYS, train_images=images[keep], train_keypoints=keypoints[keep],
                test_images=test_images, test_ids=test_ids)
    write_text(out / LOOKUP, lookup.to_csv(index=False))
    write_text(out / TEST_IDS, "ImageId\n" + "".join(f"{i}\n" for i in test_ids))
    summary = {
        "train_rows": int(keep.sum()), "complete_rows": int((complete & keep).sum()),
        "skipped_bad_rows": int(len(problems.rows)), "skipped_by_kind": skipped,
        "dropped_incomplete": valid_rows - int(keep.sum()),
        "test_rows": int(len(test_ids)), "lookup_rows": int(len(lookup)),
    }
    unused = len(set(test_ids.tolist()) - set(lookup.ImageId.tolist()))
    if unused:
        summary["test_images_not_in_lookup"] = unused
    write_json(out / META, {"task": "keypoints", "summary": summary})
    return summary


def _keypoint_values(frame, problems):
    text = frame[list(KEYPOINT_COLUMNS)].apply(lambda c: c.str.strip())
    present = ~text.isin(MISSING).to_numpy()
    values = text.where(present, "").apply(pd.to_numeric, errors="coerce").to_numpy(np.float64, copy=True)
    not_numeric = present & ~np.isfinite(values)
    for row in np.flatnonzero(not_numeric.any(axis=1)):
        column = int(np.flatnonzero(not_numeric[row])[0])
        problems.add("non-numeric keypoint", int(row), f"{KEYPOINT_COLUMNS[column]}={text.iat[row, column]!r}")
    outside = np.isfinite(values) & ((values < 0) | (values > KEYPOINTS.image_size))
    for row in np.flatnonzero(outside.any(axis=1)):
        column = int(np.flatnonzero(outside[row])[0])
        problems.add(f"keypoint outside the {KEYPOINTS.image_size}x{KEYPOINTS.image_size} image", int(row), f"{KEYPOINT_COLUMNS[column]}={values[row, column]:g}")
    values[~np.isfinite(values)] = np.nan
    return values.astype(np.float32)


def _keypoints_test(path):
    frame = read_csv(path, required=("ImageId", "Image"))
    problems = Problems(path, frame)
    ids = _integers(frame, "ImageId", problems, low=1, what="ImageId")
    _duplicates(ids, problems, "ImageId")
    images = _parse_images(frame, "Image", KEYPOINTS.image_size, problems)
    _check_test(problems)
    if not len(frame):
        raise BadInputError(f"{path}: no test rows")
    return images, ids


def _lookup_table(path, test_ids):
    frame = read_csv(path, required=("RowId", "ImageId", "FeatureName"), optional=("Location",))
    problems = Problems(path, frame)
    row_ids = _integers(frame, "RowId", problems, low=1, what="RowId")
    _duplicates(row_ids, problems, "RowId")
    image_ids = _integers(frame, "ImageId", problems, low=1, what="ImageId")
    unknown = np.flatnonzero(~np.isin(image_ids, list(test_ids)))
    problems.add_many("ImageId not in test.csv", unknown, lambda r: image_ids[r])
    bad_feature = np.flatnonzero(~frame.FeatureName.isin(KEYPOINT_COLUMNS).to_numpy())
    problems.add_many("unknown FeatureName", bad_feature, lambda r: repr(frame.FeatureName.iat[r]))
    problems.raise_if_any()
    frame = frame[["FeatureName"]].copy()
    frame.insert(0, "ImageId", image_ids)
    frame.insert(0, "RowId", row_ids)
    return frame


# --- expressions ---------------------------------------------------------------------------------

def clean_expressions(raw, out, labels=defaults.LABELS, skip_bad_rows=False):
    frame, path, test_frame, test_path = _expressions_layout(raw)
    problems = Problems(path, frame)
    usage = frame["Usage"].str.strip().to_numpy() if "Usage" in frame else np.full(len(frame), "Training")
    bad_usage = np.flatnonzero(~np.isin(usage, USAGES))
    problems.add_many("unknown Usage", bad_usage, lambda r: repr(usage[r]))
    emotion = _integers(frame, "emotion", problems, low=0, high=6, what="emotion")
    images = _parse_images(frame, "pixels", EXPRESSIONS.image_size, problems)
    is_test = np.isin(usage, USAGES[1:])
    if test_frame is None and any(usage[row] != "Training" for row in problems.rows):
        # Test rows live in this file and cannot be skipped; nor can a row whose Usage is unreadable.
        problems.raise_if_any("Only Training rows can be skipped: every test row needs a prediction in the submission.")
    keep = _drop_bad(frame, problems, skip_bad_rows)
    skipped = problems.summary()
    train = keep & (usage == "Training")

    if labels == "ferplus":
        votes = _ferplus_votes(raw / "fer2013new.csv", len(frame))
        majority, distribution, usable = ferplus_majority(votes)
        classes, train_labels, test_labels = FERPLUS_CLASSES, majority, ferplus_test_labels(votes)
        extra = {"test_plurality_labels": majority[is_test]}   # -1 where "unknown" or "NF" won
        dropped_ferplus = int((train & ~usable).sum())
        train &= usable
    else:
        classes, train_labels, test_labels = FER2013_CLASSES, emotion, emotion
        distribution = np.eye(len(FER2013_CLASSES), dtype=np.float32)[np.clip(emotion, 0, 6)]
        extra, dropped_ferplus = {}, 0

    if test_frame is not None:
        test_images, test_labels, test_usage = _expressions_test(test_frame, test_path)
        test_distribution = np.zeros((len(test_images), len(classes)), np.float32)
    else:
        test_images, test_labels, test_usage = images[is_test], test_labels[is_test], usage[is_test]
        test_distribution = distribution[is_test]
    if not train.any():
        raise BadInputError(f"{path}: no usable Training rows" + (f"\n{problems.report()}" if problems else ""))
    if not len(test_images):
        raise BadInputError(f"{test_path or path}: no test rows (PublicTest or PrivateTest); a submission needs them")

    save_arrays(
        out / CLEAN_ARRAYS,
        train_images=images[train], train_labels=train_labels[train].astype(np.int64),
        train_distribution=distribution[train].astype(np.float32),
        test_images=test_images, test_labels=np.asarray(test_labels, np.int64),
        test_distribution=test_distribution.astype(np.float32),
        test_usage=np.array([USAGES.index(u) if u in USAGES else 0 for u in test_usage], np.int64),
        **(extra if test_frame is None else {}),
    )
    write_text(out / TEST_IDS, "Id\n" + "".join(f"{i}\n" for i in range(1, len(test_images) + 1)))
    summary = {
        "train_rows": int(train.sum()), "test_rows": int(len(test_images)), "labels": labels,
        "skipped_bad_rows": int(len(problems.rows)), "skipped_by_kind": skipped,
        "dropped_unknown_or_not_face": dropped_ferplus,
        "class_counts": np.bincount(train_labels[train], minlength=len(classes)).tolist(),
    }
    if labels == "ferplus":   # FER2013's summary stays as it was: its runs keep their names
        summary["scored_test_rows"] = int((np.asarray(test_labels) >= 0).sum())
    write_json(out / META, {"task": "expressions", "classes": list(classes),
                            "submission_header": _submission_header(raw), "summary": summary})
    return summary


def _expressions_layout(raw):
    """(frame, path, test_frame, test_path) for fer2013.csv, icml_face_data.csv or train.csv + test.csv."""
    for name in ("fer2013.csv", "icml_face_data.csv"):
        if (raw / name).exists():
            return read_csv(raw / name, required=("emotion", "pixels", "Usage")), raw / name, None, None
    if (raw / "train.csv").exists():
        train = read_csv(raw / "train.csv", required=("emotion", "pixels"))
        test = read_csv(raw / "test.csv", required=("pixels",), optional=("Usage", "emotion"))
        return train, raw / "train.csv", test, raw / "test.csv"
    raise BadInputError(f"{raw}: no fer2013.csv, icml_face_data.csv or train.csv; run `python run.py download` first")


def _expressions_test(frame, path):
    problems = Problems(path, frame)
    images = _parse_images(frame, "pixels", EXPRESSIONS.image_size, problems)
    _check_test(problems)
    labels = np.full(len(frame), -1)
    usage = frame["Usage"].str.strip().to_numpy() if "Usage" in frame else np.full(len(frame), "")
    return images, labels, usage


def _submission_header(raw):
    example = raw / "example_submission.csv"
    if example.exists():
        with open(example, encoding="utf-8", errors="replace") as handle:
            header = handle.readline().strip()
        if header:
            return header
    return EXPRESSIONS_HEADER


def _ferplus_votes(path, n_rows):
    if not path.exists():
        raise BadInputError(f"{path}: not found; --labels ferplus needs the FERPlus fer2013new.csv beside fer2013.csv "
                            "(from Microsoft's FERPlus repository)")
    frame = read_csv(path, required=FERPLUS_VOTE_COLUMNS)
    if len(frame) != n_rows:
        raise BadInputError(f"{path}: {len(frame)} rows, but fer2013.csv has {n_rows}; the files must align row by row")
    problems = Problems(path, frame)
    votes = np.stack([_integers(frame, c, problems, low=0, high=100, what=f"{c} votes") for c in FERPLUS_VOTE_COLUMNS], 1)
    problems.raise_if_any()
    return votes


def ferplus_majority(votes):
    """FERPlus training labels: the most voted of the 10 vote columns (a plurality).

    Returns (label (n,) index into FERPLUS_CLASSES, distribution (n, 8) over the emotions, usable (n,)).
    A row is unusable when it has no votes or its most voted column is "unknown" or "NF" (not a face);
    ties go to the first column in FERPlus order.
    """
    votes = np.asarray(votes, np.float64)
    winner = votes.argmax(axis=1)
    emotions = votes[:, :len(FERPLUS_CLASSES)]
    total = emotions.sum(axis=1, keepdims=True)
    usable = (votes.sum(axis=1) > 0) & (winner < len(FERPLUS_CLASSES))
    distribution = np.divide(emotions, total, out=np.zeros_like(emotions), where=total > 0)
    return np.where(usable, winner, -1), distribution.astype(np.float32), usable


def ferplus_test_labels(votes):
    """FERPlus's own test label: the emotion holding more than half of a face's votes once the
    single votes (in any of the 10 columns) are dropped, or -1 (not scored) where none does.

    This is the rule of microsoft/FERPlus's reader in "majority" mode (src/ferplus.py), which builds
    its validation and test sets, so accuracies on it compare with Barsoum et al.'s 85% and later
    FERPlus papers. Applied to fer2013new.csv it scores 88.5% of the test faces; the rest have no
    clear majority. (The reader reads the votes of the repository's per-folder label.csv files,
    which differ from fer2013new.csv's for 283 of the test faces.)
    """
    votes = np.asarray(votes, np.float64)
    kept = np.where(votes > 1, votes, 0)   # a lone vote is an outlier
    winner = kept.argmax(axis=1)
    clear = (kept.max(axis=1) > kept.sum(axis=1) / 2) & (winner < len(FERPLUS_CLASSES))
    return np.where(clear, winner, -1)
