"""Parsing of Kaggle pixel strings ("12 255 0 ...") into uint8 arrays, with per-row problem reports.

Rows are parsed a chunk at a time. A chunk of clean rows, as Kaggle writes them (values of 1 to 3
digits separated by spaces), takes the fast path: a few numpy passes over its bytes. A chunk with
anything else goes to the exact checker, which names every bad row's problem for the caller to
report by file and line, and still parses the good rows around it.

Against the per-row `np.fromstring(s, sep=" ")` of the Kaggle tutorials, on 2 CPU cores shared with
a training (`python -m pipeline.bench parse`, two runs): the fast path is 16.5x and 19.5x on
training.csv, 12.9x and 17.8x on fer2013.csv, with 70 and 88 MB at peak, the output included,
against 1.0 and 1.3 GB; the checker alone is about 5x. Tried on 4,000 FER2013-size rows, and slower
than the fast path: numpy's C parser as `np.fromstring(s, np.int64, sep=" ")` per row (9x), pandas'
C parser on the column joined into one CSV (8x), pyarrow's multithreaded CSV reader (5x: its
threads do not pay for 2,304 columns).
"""
from dataclasses import dataclass, field

import numpy as np

SPACE, TAB, NEWLINE, CR, ZERO, NINE = (ord(c) for c in " \t\n\r09")
# Values per chunk: about 470 kB of text, which stays in the CPU cache through the passes over it
# (4,000 FER2013 rows: fast path 0.12 s in chunks of 64 rows, 0.22 s of 1,024; checker 0.46 s in
# chunks of 56 rows, 0.95 s of 4,096).
CHUNK_VALUES = 1 << 17


@dataclass
class ParsedPixels:
    """Parsed rows. `pixels` holds only the good rows, in order; `problems` maps row index -> reason."""

    pixels: np.ndarray                           # (n_good, n_pixels) uint8
    good: np.ndarray                             # (n_rows,) bool
    problems: dict = field(default_factory=dict)  # row index -> (kind, example)


def parse_pixel_strings(strings, n_pixels):
    """Parse space-separated integer strings, each expected to hold `n_pixels` values in 0..255.

    Problem kinds: "empty", "non-numeric", "out of range", "wrong count". Values are runs of ASCII
    digits (leading zeros allowed) separated by spaces, tabs, CR or LF; anything else is non-numeric.
    """
    strings = ["" if s is None or (isinstance(s, float) and np.isnan(s)) else str(s) for s in strings]
    pixels = np.empty((len(strings), n_pixels), np.uint8)
    good = np.ones(len(strings), bool)
    problems = {}
    kept = 0
    rows_per_chunk = max(1, CHUNK_VALUES // max(1, n_pixels))
    for start in range(0, len(strings), rows_per_chunk):
        chunk = strings[start:start + rows_per_chunk]
        parsed = _parse_clean(chunk, n_pixels)
        if parsed is None:
            checked = _check_chunk(chunk, n_pixels, start)
            parsed = checked.pixels
            good[start:start + len(chunk)] = checked.good
            problems.update(checked.problems)
        pixels[kept:kept + len(parsed)] = parsed
        kept += len(parsed)
    return ParsedPixels(pixels[:kept], good, problems)


def _parse_clean(strings, n_pixels):
    """(rows, n_pixels) uint8 when every row is exactly `n_pixels` values of 1 to 3 ASCII digits, at
    most 255, separated by spaces; None for anything else, which the exact checker then reads."""
    lead = "   "   # so that looking back three bytes from any digit stays inside the buffer
    text = lead + "\n".join(strings) + "\n"
    if not text.isascii():
        return None
    buffer = np.frombuffer(text.encode("ascii"), np.uint8)
    digits = buffer - np.uint8(ZERO)   # wraps around for the other bytes, so only digits are below 10
    is_digit = digits < 10
    # Besides digits and spaces, only the newlines that end the rows.
    if np.count_nonzero(is_digit) + np.count_nonzero(buffer == SPACE) + len(strings) != len(buffer):
        return None
    last = np.flatnonzero(is_digit[:-1] & ~is_digit[1:])   # the last digit of each value
    row_ends = len(lead) - 1 + np.cumsum([len(s) + 1 for s in strings])
    if not np.array_equal(np.searchsorted(last, row_ends), n_pixels * np.arange(1, len(strings) + 1)):
        return None   # some row has another number of values
    has_tens = is_digit[last - 1]
    has_hundreds = has_tens & is_digit[last - 2]
    if (has_hundreds & is_digit[last - 3]).any():
        return None   # 4 digits or more: leading zeros ("0007") are left to the checker
    ones, tens, hundreds = (digits[last - back].astype(np.uint16) for back in (0, 1, 2))
    values = ones + 10 * tens * has_tens + 100 * hundreds * has_hundreds
    if values.max(initial=0) > 255:
        return None
    return values.astype(np.uint8).reshape(len(strings), n_pixels)


def _check_chunk(strings, n_pixels, offset):
    """The exact rules on any text: every row's problem with an example, and the good rows parsed."""
    n_rows = len(strings)
    buffer = np.frombuffer(("\n".join(strings) + "\n").encode("utf-8", "replace"), np.uint8)
    newlines = np.flatnonzero(buffer == NEWLINE)
    if len(newlines) != n_rows:   # a newline inside a value string (a quoted CSV field): read it as a space
        buffer = np.frombuffer(("\n".join(s.replace("\n", " ") for s in strings) + "\n").encode("utf-8", "replace"),
                               np.uint8)
        newlines = np.flatnonzero(buffer == NEWLINE)
    row_of_byte = lambda positions: np.searchsorted(newlines, positions)  # noqa: E731  a newline ends its own row
    is_digit = (buffer >= ZERO) & (buffer <= NINE)
    is_separator = (buffer == SPACE) | (buffer == TAB) | (buffer == NEWLINE) | (buffer == CR)

    # A token is a run of digits; it starts where the previous byte is not a digit.
    previous_is_digit = np.concatenate([[False], is_digit[:-1]])
    next_is_digit = np.concatenate([is_digit[1:], [False]])
    starts = np.flatnonzero(is_digit & ~previous_is_digit)
    ends = np.flatnonzero(is_digit & ~next_is_digit)
    lengths = ends - starts + 1
    digits = buffer.astype(np.int32) - ZERO
    values = digits[starts]
    for position in (1, 2):
        more = lengths > position
        values[more] = values[more] * 10 + digits[starts[more] + position]
    too_big = values > 255
    long = np.flatnonzero(lengths > 3)
    if len(long):   # rare: a long token is in range only as zeros and then its last three digits ("0007")
        prefix_lengths = lengths[long] - 3
        offsets = np.concatenate([[0], np.cumsum(prefix_lengths)[:-1]])
        positions = np.repeat(starts[long] - offsets, prefix_lengths) + np.arange(prefix_lengths.sum())
        last = ends[long]
        values[long] = digits[last - 2] * 100 + digits[last - 1] * 10 + digits[last]
        too_big[long] = np.logical_or.reduceat(buffer[positions] != ZERO, offsets) | (values[long] > 255)
    token_row = row_of_byte(starts)
    counts = np.bincount(token_row, minlength=n_rows)

    problems = {}

    def flag(rows, kind, example):
        for row in np.unique(rows):
            problems.setdefault(offset + int(row), (kind, example(int(row))))

    bad_bytes = np.flatnonzero(~(is_digit | is_separator))
    flag(row_of_byte(bad_bytes), "non-numeric", lambda r: _first_bad_token(strings[r]))
    flag(token_row[too_big], "out of range", lambda r: _first_large_token(strings[r]))
    flag(np.flatnonzero(counts == 0), "empty", lambda r: "no pixel values")
    flag(np.flatnonzero((counts != n_pixels) & (counts > 0)), "wrong count",
         lambda r: f"{counts[r]} values, expected {n_pixels}")

    good = np.ones(n_rows, bool)
    good[[r - offset for r in problems]] = False
    keep = good[token_row]
    pixels = values[keep].astype(np.uint8).reshape(-1, n_pixels)
    return ParsedPixels(pixels, good, problems)


def _first_bad_token(text):
    for token in text.split():
        if not token.isdigit() or not token.isascii():
            return repr(token[:20])
    return repr(text[:20])


def _first_large_token(text):
    for token in text.split():
        if token.isascii() and token.isdigit() and int(token) > 255:
            return token[:20]
    return repr(text[:20])
