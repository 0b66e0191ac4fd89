"""Check a submission file against the competition's format, then upload it to Kaggle.

Kaggle scores a malformed file as an error and still counts it against the day's submissions, so
nothing is uploaded until the file is known to be right:

- keypoints: header exactly `RowId,Location`; one row per IdLookupTable row, with its RowId, in
  the same order; every Location a finite number within [0, 96].
- expressions: the header of example_submission.csv (`Emotion` when Kaggle shipped none); one
  row per test row; the last column a FER2013 label 0..6. A header of two columns (`Id,Emotion`)
  puts the test row's id first, which must match the expected ids in order.
"""
import csv
import math
from pathlib import Path

from pipeline.core.competitions import COMPETITIONS, EXPRESSIONS_HEADER, FER2013_CLASSES, KEYPOINTS, KEYPOINTS_HEADER
from pipeline.core.errors import BadInputError, MissingInputError
from pipeline.core.fileio import read_json
from pipeline.core.layout import LOOKUP, META, TEST_IDS
from pipeline.data import kaggle_api
SHOWN_PROBLEMS = 10


def validate_submission(task: str, file: Path, expected_ids, expected_header: str = None) -> list[str]:
    """Problems that would make Kaggle reject `file`, in file order; [] when it is valid.

    expected_ids: keypoints, the RowIds of lookup.csv in order; expressions, the test ids of
    test_ids.csv in order (only their count matters unless the header has an id column).
    expected_header: the header line expected (default: `RowId,Location` or `Emotion`).
    """
    if task not in COMPETITIONS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(COMPETITIONS)}")
    header = expected_header or (KEYPOINTS_HEADER if task == "keypoints" else EXPRESSIONS_HEADER)
    try:
        with open(file, encoding="utf-8", newline="") as handle:
            lines = list(csv.reader(handle))
    except FileNotFoundError:
        return [f"{file} does not exist"]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        return [f"{file} cannot be read as a CSV file: {error}"]
    if not lines:
        return [f"{file} is empty"]

    columns, expected_ids = header.split(","), list(expected_ids)
    problems = []
    if lines[0] != columns:
        problems.append(f"line 1: header {','.join(lines[0])!r} where {header!r} was expected")
    rows = lines[1:]
    if len(rows) != len(expected_ids):
        problems.append(f"{len(rows)} rows where {len(expected_ids)} were expected")
    check_value = _check_location if task == "keypoints" else _check_label
    for index, row in enumerate(rows):
        expected_id = expected_ids[index] if index < len(expected_ids) else None
        problems += [f"line {index + 2}: {problem}"
                     for problem in _check_row(row, columns, expected_id, check_value)]
    return problems


def submit_file(competition, file: Path, message: str, expected_ids, expected_header: str = None) -> str:
    """Validate `file` for `competition` (a competitions.Competition), then upload it.

    Returns what Kaggle said. Raises BadInputError listing the first problems, having uploaded
    nothing, when the file is invalid; KaggleError when Kaggle cannot be reached or refuses.
    """
    problems = validate_submission(competition.task, file, expected_ids, expected_header)
    if problems:
        shown = "; ".join(problems[:SHOWN_PROBLEMS])
        more = f" (and {len(problems) - SHOWN_PROBLEMS} more)" if len(problems) > SHOWN_PROBLEMS else ""
        raise BadInputError(f"{file} is not a valid {competition.task} submission, so nothing was "
                            f"uploaded: {shown}{more}")
    return kaggle_api.submit(competition.slug, Path(file), message)


def upload(competition, file, message, interim):
    """Check `file` against the ids the clean stage recorded in `interim`, upload it; Kaggle's answer."""
    expected_ids, expected_header = expected_rows(competition, interim)
    return submit_file(competition, file, message, expected_ids, expected_header)


def expected_rows(competition, interim: Path):
    """(expected_ids, expected_header) for `competition`, read from the clean stage's outputs:
    lookup.csv's RowIds for keypoints; test_ids.csv's Ids and meta.json's submission_header
    (example_submission.csv's header) for expressions."""
    interim = Path(interim)
    if competition.task == "keypoints":
        path, column = interim / LOOKUP, "RowId"
    else:
        path, column = interim / TEST_IDS, "Id"
    if not path.exists():
        raise MissingInputError(f"{path} not found; run `python run.py clean --task {competition.task}` first")
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if column not in (reader.fieldnames or []):
            raise BadInputError(f"{path}: no {column} column; run `python run.py clean --task "
                                f"{competition.task} --force` to rebuild it")
        ids = [row[column] for row in reader]
    header = None
    if competition.task == "expressions" and (interim / META).exists():
        header = read_json(interim / META).get("submission_header")
    return ids, header


def _check_row(row, columns, expected_id, check_value):
    if len(row) != len(columns):
        return [f"{len(row)} fields where {len(columns)} were expected"]
    problems = []
    if len(columns) > 1 and expected_id is not None and _as_id(row[0]) != _as_id(expected_id):
        problems.append(f"{columns[0]} {row[0]!r} where {expected_id} was expected")
    problem = check_value(columns[-1], row[-1])
    return problems + ([problem] if problem else [])


def _as_id(value):
    """Ids compare as integers when they are integers ("7", 7, numpy's 7), else as text."""
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        return text


def _check_location(column, text):
    try:
        value = float(text)
    except ValueError:
        return f"{column} {text!r} is not a number"
    if not math.isfinite(value):
        return f"{column} {text!r} is not finite"
    if not 0 <= value <= KEYPOINTS.image_size:
        return f"{column} {text!r} is outside [0, {KEYPOINTS.image_size}]"
    return None


def _check_label(column, text):
    try:
        label = int(text)
    except ValueError:
        return f"{column} {text!r} is not a whole number"
    if not 0 <= label < len(FER2013_CLASSES):
        return f"{column} {text!r} is not a label 0..{len(FER2013_CLASSES) - 1}"
    return None
