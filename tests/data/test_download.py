"""The download stage: files present, Kaggle with credentials, the sample, or --from the user's files."""
import gzip
import lzma

import pytest
from click.testing import CliRunner
from kaggle_server import expressions_bundle, keypoints_bundle, zip_bytes

from pipeline.data import download, sample
from pipeline.core.competitions import EXPRESSIONS, KEYPOINTS
from pipeline.core.errors import PipelineError
from pipeline.cli import cli


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))


def test_auto_without_credentials_uses_the_sample_and_says_so(tmp_path, no_credentials):
    said = []
    summary = download.run(EXPRESSIONS, tmp_path / "raw", sample_size=0.02, echo=said.append)
    assert summary["status"] == "ran" and summary["source"].startswith("built-in sample")
    assert "BUILT-IN SAMPLE" in said[0]
    assert (tmp_path / "raw" / "fer2013.csv").exists()
    again = download.run(EXPRESSIONS, tmp_path / "raw", sample_size=0.02, echo=said.append)
    assert again["status"] == "cached"


def test_files_the_user_placed_are_used_as_they_are(tmp_path, expressions_raw, no_credentials):
    before = {p.name: p.read_bytes() for p in expressions_raw.iterdir()}
    summary = download.run(EXPRESSIONS, expressions_raw, echo=lambda _: None)
    assert summary == {"status": "cached", "source": "files you placed there", "folder": str(expressions_raw)}
    assert {p.name: p.read_bytes() for p in expressions_raw.iterdir()} == before


def test_sample_never_silently_replaces_other_data(expressions_raw):
    with pytest.raises(PipelineError, match="--force"):
        download.run(EXPRESSIONS, expressions_raw, source="sample", echo=lambda _: None)


def test_a_swap_killed_halfway_is_recovered(tmp_path, no_credentials):
    raw = tmp_path / "raw"
    download.run(EXPRESSIONS, raw, sample_size=0.02, echo=lambda _: None)
    raw.rename(tmp_path / ".old-raw")   # as if killed between the two renames of a later download
    summary = download.run(EXPRESSIONS, raw, sample_size=0.02, echo=lambda _: None)
    assert summary["status"] == "cached" and (raw / "fer2013.csv").exists()


# --- --from: data from where the user has it ---------------------------------------------------

def fer2013_csv(tmp_path):
    folder = tmp_path / "generated"
    folder.mkdir()
    sample.write_sample(EXPRESSIONS, folder, seed=1, sizes=sample.SampleSizes(expressions=60))
    return (folder / "fer2013.csv").read_bytes()


def import_from(root, path, *extra):
    return CliRunner().invoke(cli, ["--root", str(root), "download", "--from", str(path), *extra])


@pytest.mark.parametrize("name, pack", [("fer2013.csv", lambda b: b), ("fer2013.csv.xz", lzma.compress),
                                        ("fer2013.csv.gz", gzip.compress),
                                        ("anything.zip", lambda b: zip_bytes({"data/fer2013.csv": b}))])
def test_from_imports_a_file_as_the_raw_data(tmp_path, name, pack):
    text = fer2013_csv(tmp_path)
    given = tmp_path / name
    given.write_bytes(pack(text))
    before = given.read_bytes()
    result = import_from(tmp_path / "project", given)
    assert result.exit_code == 0, result.output
    raw = tmp_path / "project" / "data" / "raw" / EXPRESSIONS.slug
    assert (raw / "fer2013.csv").read_bytes() == text
    assert download.source_of(raw) == {"source": "import", "from": str(given.resolve())}
    assert "imported from" in result.output and given.read_bytes() == before
    assert not (tmp_path / "project" / "data" / "raw" / KEYPOINTS.slug).exists()   # not a keypoints file
    cleaned = CliRunner().invoke(cli, ["--root", str(tmp_path / "project"), "clean", "--task", "expressions"])
    assert cleaned.exit_code == 0, cleaned.output


def test_from_imports_both_kaggle_bundles_from_one_folder(tmp_path):
    folder = tmp_path / "downloads"
    folder.mkdir()
    keypoints_zip, keypoints_files = keypoints_bundle()
    expressions_zip, _ = expressions_bundle()
    (folder / "facial-keypoints-detection.zip").write_bytes(keypoints_zip)
    (folder / f"{EXPRESSIONS.slug}.zip").write_bytes(expressions_zip)
    (folder / "notes.txt").write_text("not data")
    result = import_from(tmp_path / "project", folder)
    assert result.exit_code == 0, result.output
    raw = tmp_path / "project" / "data" / "raw"
    assert {p.name for p in download.raw_files(raw / KEYPOINTS.slug)} == set(keypoints_files)
    assert (raw / EXPRESSIONS.slug / "fer2013.csv").exists()
    assert not (raw / EXPRESSIONS.slug / "notes.txt").exists()


def test_from_something_else_is_one_line_and_changes_nothing(tmp_path):
    result = import_from(tmp_path / "project", tmp_path / "project" / "missing.csv")
    assert result.exit_code == 2 and "does not exist" in result.output   # click's own check
    other = tmp_path / "holiday.zip"
    other.write_bytes(zip_bytes({"photo.csv": b"a,b\n"}))
    result = import_from(tmp_path / "project", other)
    assert result.exit_code == 1 and "holds no files of either competition" in result.output
    result = import_from(tmp_path / "project", other, "--task", "keypoints")
    assert result.exit_code == 1 and "expected training.csv+test.csv+IdLookupTable.csv" in result.output
    assert "Traceback" not in result.output
    assert not download.raw_files(tmp_path / "project" / "data" / "raw" / KEYPOINTS.slug)


def test_from_a_hostile_archive_keeps_the_previous_raw_data(tmp_path):
    project = tmp_path / "project"
    good = tmp_path / "fer2013.csv"
    good.write_bytes(fer2013_csv(tmp_path))
    assert import_from(project, good).exit_code == 0
    hostile = tmp_path / "fer2013.zip"
    hostile.write_bytes(zip_bytes({"../fer2013.csv": b"emotion,pixels,Usage\n"}))
    result = import_from(project, hostile, "--task", "expressions")
    assert result.exit_code == 1 and "'..'" in result.output
    assert (project / "data" / "raw" / EXPRESSIONS.slug / "fer2013.csv").read_bytes() == good.read_bytes()
