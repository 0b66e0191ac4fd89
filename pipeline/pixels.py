"""Vectorised parsing of Kaggle pixel strings ("12 255 0 ...") into uint8 arrays.

The whole column is parsed as one byte buffer with numpy: no per-row or per-token Python work, so the
35,887 FER2013 rows (83 million tokens) parse in seconds. Problems are reported per row, so the caller
can name the file and line.
"""
from dataclasses import dataclass, field

import numpy as np

SPACE, TAB, NEWLINE, CR, ZERO, NINE = (ord(c) for c in " \t\n\r09")
CHUNK_ROWS = 4096   # bounds the temporary index arrays to a few hundred MB on FER2013


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
    parts = [_parse_chunk(strings[i:i + CHUNK_ROWS], n_pixels, i) for i in range(0, len(strings), CHUNK_ROWS)]
    if not parts:
        return ParsedPixels(np.empty((0, n_pixels), np.uint8), np.zeros(0, bool))
    problems = {}
    for part in parts:
        problems.update(part.problems)
    return ParsedPixels(
        pixels=np.concatenate([p.pixels for p in parts]),
        good=np.concatenate([p.good for p in parts]),
        problems=problems,
    )


def _parse_chunk(strings, n_pixels, offset):
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
