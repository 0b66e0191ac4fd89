"""`run.py all --source kaggle --submit -m test`: the whole chain through the real kaggle client,
against the loopback fake of Kaggle, with the built-in sample packed as Kaggle packs its bundles."""
import pytest
from click.testing import CliRunner

from kaggle_server import KaggleServer, point_client_at, tar_gz_bytes, zip_bytes
from pipeline.data import sample
from pipeline.core.competitions import EXPRESSIONS, KEYPOINTS
from pipeline.cli import cli

USER, KEY = "alice", "key-of-alice-never-to-be-shown"
pytestmark = pytest.mark.slow   # trains, or runs the whole chain

SIZES = sample.SampleSizes(keypoints_train=40, keypoints_test=8, expressions=120)


def kaggle_bundles(folder):
    """{slug: zip bytes} in the real layouts: keypoints CSVs in training.zip and test.zip, FER2013 in
    fer2013.tar.gz under fer2013/."""
    files = {}
    for competition in (KEYPOINTS, EXPRESSIONS):
        target = folder / competition.task
        target.mkdir()
        sample.write_sample(competition, target, seed=5, sizes=SIZES)
        files[competition.slug] = {p.name: p.read_bytes() for p in target.iterdir()}
    keypoints, fer = files[KEYPOINTS.slug], files[EXPRESSIONS.slug]
    return {
        KEYPOINTS.slug: zip_bytes({
            "training.zip": zip_bytes({"training.csv": keypoints["training.csv"]}),
            "test.zip": zip_bytes({"test.csv": keypoints["test.csv"]}),
            "IdLookupTable.csv": keypoints["IdLookupTable.csv"],
            "SampleSubmission.csv": keypoints["SampleSubmission.csv"]}),
        EXPRESSIONS.slug: zip_bytes({"fer2013.tar.gz": tar_gz_bytes({"fer2013/fer2013.csv": fer["fer2013.csv"]})}),
    }


@pytest.fixture(scope="module")
def server():
    with KaggleServer() as running:
        yield running


def test_all_downloads_trains_and_uploads_exact_bytes(server, monkeypatch, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    point_client_at(server, monkeypatch, home)
    monkeypatch.setenv("KAGGLE_USERNAME", USER)
    monkeypatch.setenv("KAGGLE_KEY", KEY)
    state = server.state
    state.reset()
    state.users[USER] = KEY
    state.bundles = kaggle_bundles(tmp_path)
    state.rules_accepted = {KEYPOINTS.slug, EXPRESSIONS.slug}

    root = tmp_path / "project"
    result = CliRunner().invoke(cli, ["--root", str(root), "all", "--source", "kaggle", "--submit", "-m", "test",
                                      "--epochs", "1", "--batch-size", "16", "--augment", "none"])
    assert result.exit_code == 0, result.output[-3000:] + repr(result.exception)
    assert "BUILT-IN SAMPLE" not in result.output and "Kaggle download" in result.output
    assert (root / "data" / "raw" / EXPRESSIONS.slug / "fer2013.csv").exists()   # lifted out of fer2013/

    uploaded = list(state.uploads.values())
    written = [(root / "submissions" / f"{c.slug}-latest.csv").read_bytes() for c in (KEYPOINTS, EXPRESSIONS)]
    assert uploaded == written
    assert [len(state.submissions[c.slug]) for c in (KEYPOINTS, EXPRESSIONS)] == [1, 1]
    assert KEY not in result.output
    assert not any(KEY.encode() in p.read_bytes() for p in root.rglob("*") if p.is_file())


def test_submit_without_credentials_fails_before_training(monkeypatch, tmp_path):
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / ".config"))
    result = CliRunner().invoke(cli, ["--root", str(tmp_path), "all", "--submit", "-m", "x"])
    assert result.exit_code == 1
    assert "kaggle.json" in result.output and not (tmp_path / "data").exists()
