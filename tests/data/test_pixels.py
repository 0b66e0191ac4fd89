import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.data.pixels import _check_chunk, _parse_clean, parse_pixel_strings


def reference(strings, n):
    """The straightforward parser the vectorised one must agree with."""
    return np.array([[int(t) for t in s.split()] for s in strings], np.uint8).reshape(-1, n)


def test_parses_rows_into_uint8():
    parsed = parse_pixel_strings(["0 1 2 255", "10 20 30 40"], 4)
    assert parsed.pixels.dtype == np.uint8
    np.testing.assert_array_equal(parsed.pixels, [[0, 1, 2, 255], [10, 20, 30, 40]])
    assert parsed.good.all() and not parsed.problems


@pytest.mark.parametrize("row, kind", [
    ("1 2 3", "wrong count"),
    ("1 2 3 4 5", "wrong count"),
    ("1 2 x 4", "non-numeric"),
    ("1 2 -3 4", "non-numeric"),
    ("1 2 3.5 4", "non-numeric"),
    ("1 2 256 4", "out of range"),
    ("1 2 1000 4", "out of range"),
    ("", "empty"),
    ("   ", "empty"),
])
def test_bad_rows_are_named_and_left_out(row, kind):
    parsed = parse_pixel_strings(["9 9 9 9", row, "7 7 7 7"], 4)
    assert parsed.problems[1][0] == kind
    assert parsed.good.tolist() == [True, False, True]
    np.testing.assert_array_equal(parsed.pixels, [[9] * 4, [7] * 4])


def test_missing_values_count_as_empty():
    parsed = parse_pixel_strings(["1 2", None, float("nan")], 2)
    assert {row: kind for row, (kind, _) in parsed.problems.items()} == {1: "empty", 2: "empty"}


def test_chunks_keep_row_numbers(monkeypatch):
    import pipeline.data.pixels as pixels

    monkeypatch.setattr(pixels, "CHUNK_VALUES", 6)   # 3 rows of 2 values a chunk
    rows = ["1 2"] * 7 + ["1 two"] + ["3 4"] * 2
    parsed = pixels.parse_pixel_strings(rows, 2)
    assert list(parsed.problems) == [7]
    assert len(parsed.pixels) == 9


pixel_rows = st.lists(st.lists(st.integers(0, 255), min_size=6, max_size=6), min_size=1, max_size=20)


@settings(max_examples=200, deadline=None)
@given(pixel_rows, st.sampled_from([" ", "  ", "\t"]))
def test_valid_input_matches_reference(rows, separator):
    strings = [separator.join(map(str, row)) for row in rows]
    np.testing.assert_array_equal(parse_pixel_strings(strings, 6).pixels, reference(strings, 6))


@settings(max_examples=200, deadline=None)
@given(pixel_rows, st.data())
def test_invalid_row_is_reported_on_its_line(rows, data):
    strings = [" ".join(map(str, row)) for row in rows]
    bad = data.draw(st.integers(0, len(strings) - 1))
    token = data.draw(st.sampled_from(["a", "-1", "256", "1e3", "9999", "½", "3.0"]))
    tokens = strings[bad].split()
    tokens[data.draw(st.integers(0, len(tokens) - 1))] = token
    strings[bad] = " ".join(tokens)
    parsed = parse_pixel_strings(strings, 6)
    assert list(parsed.problems) == [bad]
    good = [s for i, s in enumerate(strings) if i != bad]
    np.testing.assert_array_equal(parsed.pixels, reference(good, 6) if good else np.empty((0, 6)))


# --- arbitrary text: the parser never raises and rejects exactly what the rules reject -----------

def reference_kind(text, n):
    """The rules, stated plainly: values are runs of ASCII digits separated by spaces, tabs, CR or LF,
    each at most 255 (leading zeros allowed), exactly `n` of them."""
    tokens = [t for t in re.split(r"[ \t\r\n]+", text) if t]
    if any(not re.fullmatch(r"[0-9]+", t) for t in tokens):
        return "non-numeric"
    if any(int(t) > 255 for t in tokens):
        return "out of range"
    if not tokens:
        return "empty"
    if len(tokens) != n:
        return "wrong count"
    return None


def check_against_reference(strings, n):
    parsed = parse_pixel_strings(strings, n)
    expected = {i: kind for i, s in enumerate(strings) if (kind := reference_kind(s, n))}
    assert {row: kind for row, (kind, _) in parsed.problems.items()} == expected
    assert parsed.good.tolist() == [i not in expected for i in range(len(strings))]
    good = [s for i, s in enumerate(strings) if i not in expected]
    rows = [[int(t) for t in re.split(r"[ \t\r\n]+", s) if t] for s in good]
    np.testing.assert_array_equal(parsed.pixels, np.array(rows, np.uint8).reshape(-1, n))


pieces = st.sampled_from(list("0123456789 \t\r\n") + ["00", "255", "256", "-", "+", ".", "e", "x", "é", "½", "٣",
                                                          "\x00", "\x0b", "\xa0", ","])
pixel_like = st.lists(pieces, max_size=16).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(pixel_like | st.text(max_size=12), min_size=1, max_size=12), st.integers(1, 4))
def test_garbage_is_flagged_exactly_like_the_reference(strings, n):
    check_against_reference(strings, n)


@pytest.mark.parametrize("row", ["0007 1 2", "000000000000255 0 0", "00 0 0"])
def test_leading_zeros_are_the_same_value(row):
    check_against_reference([row, "1 2 3"], 3)


def test_newline_inside_a_value_string_does_not_shift_rows():
    check_against_reference(["1 2\n3", "4 5 6", "7\n\n8 9", "x\ny"], 3)


# --- the fast path: it takes Kaggle's rows, and whatever it accepts the checker reads the same ----

@settings(max_examples=200, deadline=None)
@given(pixel_rows)
def test_kaggle_formatted_rows_take_the_fast_path(rows):
    strings = [" ".join(map(str, row)) for row in rows]
    np.testing.assert_array_equal(_parse_clean(strings, 6), reference(strings, 6))


VALID_TOKENS = ["0", "9", "10", "99", "100", "255", "00", "000"]
ODD_TOKENS = ["256", "999", "1000", "0007", "-0", "+1", "1.0", "1e2", "٣", ""]


@st.composite
def nearly_kaggle_rows(draw):
    """(rows, n): rows of n values as Kaggle writes them, some with one oddity; the fast path's edge cases."""
    n = draw(st.integers(1, 4))

    def values(count):
        return st.lists(st.sampled_from(VALID_TOKENS), min_size=count, max_size=count)

    kaggle = values(n).map(" ".join)
    wrong_count = st.sampled_from([n - 1, n + 1]).flatmap(values).map(" ".join)
    odd_value = st.builds(lambda tokens, odd, at: " ".join(tokens[:at] + [odd] + tokens[at + 1:]),
                          values(n), st.sampled_from(ODD_TOKENS), st.integers(0, n - 1))
    odd_spacing = st.builds(lambda tokens, separator, before, after: before + separator.join(tokens) + after,
                            values(n), st.sampled_from([" ", "  ", "\t", "\r\n"]),
                            st.sampled_from(["", " "]), st.sampled_from(["", " ", "\n"]))
    row = st.one_of(kaggle, kaggle, kaggle, wrong_count, odd_value, odd_spacing)
    return draw(st.lists(row, min_size=1, max_size=5)), n


@settings(max_examples=400, deadline=None)
@given(nearly_kaggle_rows() | st.tuples(st.lists(pixel_like, min_size=1, max_size=8), st.integers(1, 4)))
def test_fast_path_accepts_only_what_the_checker_reads_the_same(rows_and_n):
    strings, n = rows_and_n
    fast = _parse_clean(strings, n)
    if fast is not None:
        checked = _check_chunk(strings, n, 0)
        assert not checked.problems
        np.testing.assert_array_equal(fast, checked.pixels)


@pytest.mark.parametrize("rows", [["1 256"], ["999 1"], ["1000 1"], ["1", "2 3 4"], ["0007 1"], ["+1 2"], ["1 ٣"],
                                  ["1 2\n3 4", ""]])
def test_fast_path_leaves_what_it_cannot_read_exactly_to_the_checker(rows):
    assert _parse_clean(rows, 2) is None


def test_only_the_chunk_with_a_bad_row_goes_to_the_checker(monkeypatch):
    from pipeline.data import pixels

    checked_chunks = []

    def check_chunk(strings, n_pixels, offset):
        checked_chunks.append(offset)
        return _check_chunk(strings, n_pixels, offset)

    monkeypatch.setattr(pixels, "CHUNK_VALUES", 4)   # 2 rows of 2 values a chunk
    monkeypatch.setattr(pixels, "_check_chunk", check_chunk)
    parsed = pixels.parse_pixel_strings(["1 2", "3 4", "5 256", "7 8", "9 10"], 2)
    assert checked_chunks == [2]
    assert parsed.problems == {2: ("out of range", "256")}
    np.testing.assert_array_equal(parsed.pixels, [[1, 2], [3, 4], [7, 8], [9, 10]])
