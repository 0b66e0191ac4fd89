"""Reading the competitions' CSV files with problems reported by file and line.

The file is read once as bytes. A vectorised pass over them finds where each row starts (its line
number in the file, counting blank lines and newlines inside quoted fields) and how many fields it
has, before pandas' C parser splits the fields. So every problem names the real line, a row with too
many or too few fields (a file cut off mid-row) is a bad row like any other, and a file that is not
CSV at all (an archive, an HTML page) is recognised before anything is parsed.
"""
import csv
import io
import re
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.core.errors import BadInputError
from pipeline.core.fileio import explain

MAX_EXAMPLES = 10
NEWLINE, CR, QUOTE, COMMA, SPACE, TAB = b"\n\r\", \t"
# Kinds of row problem that a file cut off in the middle of its last row produces.
CUT_OFF_KINDS = ("too few fields", "pixels wrong count", "pixels empty")


def read_csv(path, required, optional=()):
    """Read a CSV as strings, with column names stripped (icml_face_data.csv pads them with spaces).

    Raises BadInputError naming the file for an empty file, a file that is not CSV text, or missing
    columns. The frame's index is each row's line number in the file; rows with too many or too few
    fields are kept (missing fields read as "") and listed for `Problems(path, frame)`.
    UTF-8 with or without a byte-order mark; LF, CRLF or CR line endings; Excel-style quoting.
    """
    data = _read_bytes(path)
    _reject_non_csv(path, data)
    rows = _scan_rows(path, data)
    header = _header(path, data[rows.header_start:rows.header_end], rows.header_line)   # without the BOM
    names = [str(c).strip() for c in header]
    _check_columns(path, rows.header_line, names, required)
    width = max(len(names), int(rows.fields.max(initial=0)))
    try:
        frame = pd.read_csv(io.BytesIO(data), header=None, names=range(width), index_col=False,
                            dtype=str, keep_default_na=False, na_filter=False, engine="c",
                            encoding="utf-8", encoding_errors="replace")
    except pd.errors.ParserError as error:
        raise BadInputError(f"{path}: {_quote_problem(data, rows) or 'not a valid CSV file: ' + _short(error)}") from None
    frame = frame.iloc[1:]   # the header, read as a row so that no row's width is checked against it
    if len(frame) != len(rows.lines):
        raise BadInputError(f"{path}: {_quote_problem(data, rows) or 'the rows cannot be told apart reliably'}")

    wanted = [i for i, name in enumerate(names) if name in set(required) | set(optional)]
    frame = frame[wanted]
    frame.columns = [names[i] for i in wanted]
    frame.index = rows.lines
    frame.attrs["csv_problems"] = _field_problems(rows.fields, len(names))
    frame.attrs["csv_cut_off"] = int(rows.lines[-1]) if rows.unterminated and len(rows.lines) else None
    return frame


def _read_bytes(path):
    if not path.exists():
        raise BadInputError(f"{path}: file not found")
    if path.is_dir():
        raise BadInputError(f"{path}: is a folder, not a CSV file")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise explain(error, path, "read") from None
    if not data or data.isspace():
        raise BadInputError(f"{path}: the file is empty")
    return data


def _reject_non_csv(path, data):
    """Recognise what a download most often leaves instead of a CSV: archives, web pages, binary data."""
    start = data[:1024].lstrip().lower()
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        raise BadInputError(f"{path}: line 1: this is a zip archive, not a CSV file; extract it first")
    if data[:2] == b"\x1f\x8b":
        raise BadInputError(f"{path}: line 1: this is a gzip-compressed file, not a CSV file; decompress it first")
    if start.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body")) or b"<html" in start:
        raise BadInputError(f"{path}: line 1: this is a web page (HTML), not a CSV file; "
                            "often a sign-in or error page saved by a failed download: download it again")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise BadInputError(f"{path}: line 1: this is UTF-16 text; save it as UTF-8 (or CSV UTF-8 in Excel)")
    if start.startswith((b"{", b"[")):
        excerpt = data.lstrip()[:80].decode("utf-8", "replace")
        raise BadInputError(f"{path}: line 1: this looks like JSON, not a CSV file ({excerpt!r}); download it again")
    first_line = data[:data.find(b"\n") if b"\n" in data[:65536] else 65536]
    if any(byte < 32 and byte not in (TAB, CR) for byte in first_line):
        raise BadInputError(f"{path}: line 1: binary data, not CSV text (control bytes in the header)")
    try:
        first_line.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        if error.start < len(first_line) - 4:   # not just a character cut at the 64 KiB limit
            raise BadInputError(f"{path}: line 1: not UTF-8 text (byte {error.start} of the header)") from None


@dataclass
class _Rows:
    """Where the rows are: the header's bytes, and per data row its line number and number of fields."""

    header_start: int
    header_end: int
    header_line: int
    lines: np.ndarray
    fields: np.ndarray
    unterminated: bool   # the last row has no line break after it
    quotes: np.ndarray   # positions of every double quote


def _scan_rows(path, data):
    """Split `data` into rows as pandas' C parser does: at LF, CRLF or a lone CR, except inside
    double quotes; rows holding only spaces or tabs are blank and skipped."""
    buffer = np.frombuffer(data, np.uint8)
    breaks = np.flatnonzero(buffer == NEWLINE)
    returns = np.flatnonzero(buffer == CR) if b"\r" in data else np.empty(0, np.int64)
    if len(returns):   # a CR not followed by LF ends a line too
        following = buffer[np.minimum(returns + 1, len(buffer) - 1)]
        lone = returns[(returns + 1 == len(buffer)) | (following != NEWLINE)]
        breaks = np.union1d(breaks, lone)
    quotes = np.flatnonzero(buffer == QUOTE) if b'"' in data else np.empty(0, np.int64)
    commas = np.flatnonzero(buffer == COMMA)
    row_ends = breaks
    if len(quotes):   # an even number of quotes before a byte: it is outside quotes ("" escapes too)
        row_ends = breaks[np.searchsorted(quotes, breaks) % 2 == 0]
        commas = commas[np.searchsorted(quotes, commas) % 2 == 0]
    starts = np.concatenate([[3 if data.startswith(b"\xef\xbb\xbf") else 0], row_ends + 1])
    ends = np.append(row_ends, len(buffer))
    if len(returns):   # CRLF: the CR is part of the line break, not of the row
        ends = ends - ((ends > starts) & (buffer[np.maximum(ends - 1, 0)] == CR))
    lines = 1 + np.searchsorted(breaks, starts)
    fields = 1 + np.searchsorted(commas, ends) - np.searchsorted(commas, starts)
    blank = _blank_rows(buffer, starts, ends)
    present = np.flatnonzero(~blank)
    if not len(present):
        raise BadInputError(f"{path}: the file is empty")
    header, body = present[0], present[1:]
    unterminated = len(body) > 0 and ends[body[-1]] == len(buffer)
    return _Rows(int(starts[header]), int(ends[header]), int(lines[header]), lines[body], fields[body],
                 bool(unterminated), quotes)


def _blank_rows(buffer, starts, ends):
    """Rows with nothing but spaces and tabs (pandas skips them)."""
    blank = ends <= starts
    maybe = np.flatnonzero(~blank)
    first = buffer[np.minimum(starts[maybe], len(buffer) - 1)]
    for row in maybe[(first == SPACE) | (first == TAB)]:   # rare: check those byte by byte
        blank[row] = not bytes(buffer[starts[row]:ends[row]]).strip(b" \t")
    return blank


def _header(path, text, line):
    try:
        return next(csv.reader([text.decode("utf-8-sig", "replace")]))
    except (csv.Error, StopIteration):
        raise BadInputError(f"{path}: line {line}: cannot read the header") from None


def _check_columns(path, line, names, required):
    missing = [c for c in required if c not in names]
    if missing:
        if all(re.fullmatch(r"[\d\s.eE+-]*", name) for name in names):
            raise BadInputError(f"{path}: line {line}: no header (the first line looks like data); "
                                f"expected a header with {', '.join(required[:4])}{', ...' if len(required) > 4 else ''}")
        found = ",".join(names[:8]) + ("..." if len(names) > 8 else "")
        listed = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise BadInputError(f"{path}: line {line}: missing column(s) {listed} (header is {found})")
    if len(set(names)) != len(names):
        twice = sorted({name for name in names if names.count(name) > 1})
        raise BadInputError(f"{path}: line {line}: duplicated column name(s) {', '.join(map(repr, twice[:5]))}")


def _field_problems(fields, expected):
    """{row position: (kind, example)} for rows whose number of fields is not the header's."""
    problems = {}
    for row in np.flatnonzero(fields != expected):
        kind = "too few fields" if fields[row] < expected else "too many fields"
        count = int(fields[row])
        problems[int(row)] = (kind, f"{count} field{'s' * (count != 1)}, expected {expected}")
    return problems


def _quote_problem(data, rows):
    """A line to blame when quotes make the rows ambiguous: the first quote inside a field, or the
    quote that is never closed."""
    quotes = rows.quotes
    if not len(quotes):
        return None
    before = np.frombuffer(data, np.uint8)[np.maximum(quotes - 1, 0)]
    after = np.frombuffer(data + b"\n", np.uint8)[quotes + 1]
    boundary = np.frombuffer(b",\n\r\"", np.uint8)
    stray = quotes[(quotes > 0) & ~np.isin(before, boundary) & ~np.isin(after, boundary)]
    line = lambda position: 1 + data.count(b"\n", 0, position)  # noqa: E731
    if len(stray):
        return f'line {line(stray[0])}: a quote (") inside a field; the rows cannot be split reliably'
    if len(quotes) % 2:
        return f'line {line(quotes[-1])}: a quoted field (") is never closed'
    return None


def _short(error):
    text = str(error).strip().splitlines()[-1]
    return text.replace("C error: ", "")


class Problems:
    """Collects bad rows by kind and line, and reports them as one line per kind.

    Built from the frame `read_csv` returned, it starts with that file's rows of the wrong width and
    names rows by their line in the file; a row with such a structural problem (or cut off at the end
    of the file) is reported once, for that, not again for the empty fields it causes.
    """

    def __init__(self, path, frame=None):
        self.path = path
        self.lines = defaultdict(list)      # kind -> [(line, example)]
        self.rows = set()                   # frame row indices with any problem
        self._line_numbers = None if frame is None else frame.index.to_numpy()
        self._cut_off = None if frame is None else frame.attrs.get("csv_cut_off")
        self._structural = set()
        if frame is not None:
            for row, (kind, example) in sorted(frame.attrs.get("csv_problems", {}).items()):
                self.add(kind, row, example)
                self._structural.add(row)

    def line(self, row):
        return int(self._line_numbers[row]) if self._line_numbers is not None else row + 2

    def add(self, kind, row, example):
        if row in self._structural:
            return
        line = self.line(row)
        if line == self._cut_off and kind in CUT_OFF_KINDS:
            kind, example = "row cut off at the end of the file (an interrupted download?)", f"{kind}: {example}"
            self._structural.add(row)
        self.lines[kind].append((line, example))
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
            items = sorted(items, key=lambda item: item[0])
            lines = ", ".join(str(line) for line, _ in items[:MAX_EXAMPLES])
            more = f" and {len(items) - MAX_EXAMPLES} more" if len(items) > MAX_EXAMPLES else ""
            out.append(f"{self.path}: {kind} on line {lines}{more} (line {items[0][0]}: {items[0][1]})")
        return "\n".join(out[:MAX_EXAMPLES])

    def raise_if_any(self, hint=""):
        if self:
            raise BadInputError(self.report() + (f"\n{hint}" if hint else ""))

    def summary(self):
        return {kind: len(items) for kind, items in self.lines.items()}
