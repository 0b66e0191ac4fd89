"""Source selection for the download stage: files present, Kaggle with credentials, else the sample."""
import pytest

from pipeline import download
from pipeline.competitions import EXPRESSIONS
from pipeline.errors import PipelineError


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
