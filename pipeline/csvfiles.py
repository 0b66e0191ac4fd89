"""Reading the competitions' CSV files with problems reported by file and line."""
from collections import defaultdict

from .errors import BadInputError

MAX_EXAMPLES = 10


def read_csv(path, required, optional=()):
    """Read a CSV as strings, with column names stripped (icml_face_data.csv pads them with spaces).

    Raises BadInputError naming the file for an empty file, a file that is not CSV text, or missing
    columns. Row i of the frame is line i + 2 of the file (line 1 is the header).
    """
    import pandas as pd

    if not path.exists():
        raise BadInputError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise BadInputError(f"{path}: the file is empty")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False,
                            engine="c", encoding="utf-8", skipinitialspace=False)
    except UnicodeDecodeError as error:
        raise BadInputError(f"{path}: not a text CSV file (byte {error.start} is not UTF-8)") from None
    except pd.errors.EmptyDataError:
        raise BadInputError(f"{path}: the file is empty") from None
    except pd.errors.ParserError as error:
        raise BadInputError(f"{path}: not a valid CSV file: {_short(error)}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        found = ",".join(frame.columns[:8]) + ("..." if len(frame.columns) > 8 else "")
        raise BadInputError(f"{path}: line 1: missing column(s) {', '.join(missing)} (header is {found})")
    if frame.columns.duplicated().any():
        raise BadInputError(f"{path}: line 1: duplicated column names")
    return frame[[c for c in frame.columns if c in set(required) | set(optional)]]


def _short(error):
    text = str(error).strip().splitlines()[-1]
    return text.replace("C error: ", "")


class Problems:
    """Collects bad rows by kind and line, and reports them as one line per kind."""

    def __init__(self, path):
        self.path = path
        self.lines = defaultdict(list)      # kind -> [(line, example)]
        self.rows = set()                   # frame row indices with any problem

    def add(self, kind, row, example):
        self.lines[kind].append((row + 2, example))
        self.rows.add(row)

    def add_many(self, kind, rows, example):
        for row in rows:
            self.add(kind, int(row), example(int(row)))

    def __bool__(self):
        return bool(self.lines)

    def count(self):
        return len(self.rows)

    def report(self):
        """One line per problem kind: file, first line numbers, an example."""
        out = []
        for kind, items in self.lines.items():
            lines = ", ".join(str(line) for line, _ in items[:MAX_EXAMPLES])
            more = f" and {len(items) - MAX_EXAMPLES} more" if len(items) > MAX_EXAMPLES else ""
            out.append(f"{self.path}: {kind} on line {lines}{more} (line {items[0][0]}: {items[0][1]})")
        return "\n".join(out[:MAX_EXAMPLES])

    def raise_if_any(self, hint=""):
        if self:
            raise BadInputError(self.report() + (f"\n{hint}" if hint else ""))

    def summary(self):
        return {kind: len(items) for kind, items in self.lines.items()}

