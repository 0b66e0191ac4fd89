"""csvfiles.read_csv: strings by column, each row indexed by its real line in the file, and files
that are not CSV recognised before anything is parsed."""
import gzip
import zipfile

import pytest

from pipeline.data.csvfiles import read_csv
from pipeline.core.errors import BadInputError


def write(tmp_path, data, name="train.csv"):
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def test_rows_are_indexed_by_their_line_counting_blank_lines_and_quoted_newlines(tmp_path):
    path = write(tmp_path, 'emotion,pixels,Usage\n3,"1 2\n3",Training\n\n4,5 6,PublicTest\n')
    frame = read_csv(path, required=("emotion", "pixels"), optional=("Usage",))
    assert frame.index.tolist() == [2, 5]
    assert frame["pixels"].tolist() == ["1 2\n3", "5 6"]
    assert frame["Usage"].tolist() == ["Training", "PublicTest"]


def test_bom_crlf_and_padded_column_names_are_read(tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbf emotion , pixels\r\n1,0 0\r\n")
    frame = read_csv(path, required=("emotion", "pixels"))
    assert list(frame.columns) == ["emotion", "pixels"] and frame["emotion"].tolist() == ["1"]


def test_rows_with_the_wrong_number_of_fields_are_kept_and_listed(tmp_path):
    path = write(tmp_path, "emotion,pixels\n1,2,3\n4\n5,6\n")
    frame = read_csv(path, required=("emotion", "pixels"))
    assert frame["pixels"].tolist() == ["2", "", "6"]
    assert frame.attrs["csv_problems"] == {0: ("too many fields", "3 fields, expected 2"),
                                           1: ("too few fields", "1 field, expected 2")}


def test_a_missing_column_names_the_file_line_and_header(tmp_path):
    path = write(tmp_path, "emotion,Usage\n1,Training\n")
    with pytest.raises(BadInputError, match=r"train\.csv: line 1: missing column\(s\) .*pixels"):
        read_csv(path, required=("emotion", "pixels"))


@pytest.mark.parametrize("make, said", [
    (lambda p: zipfile.ZipFile(p, "w").writestr("train.csv", "a,b\n"), "zip archive"),
    (lambda p: p.write_bytes(gzip.compress(b"a,b\n")), "gzip-compressed"),
    (lambda p: p.write_text("<!DOCTYPE html><html><body>Sign in</body></html>"), "web page"),
    (lambda p: p.write_text(""), "empty"),
], ids=["zip", "gzip", "html", "empty"])
def test_what_a_download_leaves_instead_of_a_csv_is_named(tmp_path, make, said):
    path = tmp_path / "train.csv"
    make(path)
    with pytest.raises(BadInputError, match=said) as error:
        read_csv(path, required=("a",))
    assert str(path) in str(error.value)
