"""kaggle_api against the real `kaggle` client, talking to a loopback fake of Kaggle's API."""
import base64
import io
import json
import logging
import socket
import tarfile

import pytest

from kaggle_server import (
    KaggleServer, expressions_bundle, keypoints_bundle, point_client_at, zip_bytes)
from pipeline.data import kaggle_api
from pipeline.data.archives import UnsafeArchiveError
from pipeline.core.competitions import EXPRESSIONS, KEYPOINTS
from pipeline.data.kaggle_api import KaggleError

USER = "alice"
KEY = "key-of-alice-never-to-be-shown"
TOKEN = "token-of-alice-never-to-be-shown"
KEYPOINTS_ZIP, KEYPOINTS_FILES = keypoints_bundle()
EXPRESSIONS_ZIP, EXPRESSIONS_FILES = expressions_bundle()


@pytest.fixture(scope="module")
def server():
    with KaggleServer() as running:
        yield running


@pytest.fixture
def home(tmp_path):
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


@pytest.fixture
def kaggle(server, monkeypatch, home):
    """The fake Kaggle, where alice has accepted both competitions' rules; no credentials set."""
    point_client_at(server, monkeypatch, home)
    state = server.state
    state.reset()
    state.users[USER] = KEY
    state.tokens[TOKEN] = USER
    state.bundles = {KEYPOINTS.slug: KEYPOINTS_ZIP, EXPRESSIONS.slug: EXPRESSIONS_ZIP}
    state.rules_accepted = {KEYPOINTS.slug, EXPRESSIONS.slug}
    return state


def use_credentials(kind, monkeypatch, home, key=KEY, token=TOKEN):
    """Configure one of the credentials the client accepts, the way a user would."""
    folder = home / ".kaggle"
    folder.mkdir(exist_ok=True)
    if kind == "kaggle.json":
        (folder / "kaggle.json").write_text(json.dumps({"username": USER, "key": key}))
        (folder / "kaggle.json").chmod(0o600)
    elif kind == "KAGGLE_USERNAME+KAGGLE_KEY":
        monkeypatch.setenv("KAGGLE_USERNAME", USER)
        monkeypatch.setenv("KAGGLE_KEY", key)
    elif kind == "KAGGLE_API_TOKEN":
        monkeypatch.setenv("KAGGLE_API_TOKEN", token)
    elif kind == "access_token file":
        (folder / "access_token").write_text(token + "\n")
    else:
        raise ValueError(kind)


KINDS = ["kaggle.json", "KAGGLE_USERNAME+KAGGLE_KEY", "KAGGLE_API_TOKEN", "access_token file"]


# --- credentials ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_of_credential_is_found_and_accepted(kaggle, monkeypatch, home, kind):
    assert not kaggle_api.credentials_available()
    use_credentials(kind, monkeypatch, home)
    assert kaggle_api.credentials_available()
    assert kaggle_api.list_submissions(KEYPOINTS.slug) == []


def test_kaggle_json_is_found_where_the_client_looks(kaggle, monkeypatch, tmp_path, home):
    config = tmp_path / "config"
    config.mkdir()
    (config / "kaggle.json").write_text(json.dumps({"username": USER, "key": KEY}))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(config))
    assert kaggle_api.credentials_available()
    monkeypatch.delenv("KAGGLE_CONFIG_DIR")
    assert not kaggle_api.credentials_available()
    # On Linux without ~/.kaggle, the client follows the XDG convention.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    config.rename(tmp_path / "kaggle")
    assert kaggle_api.credentials_available()


def test_incomplete_or_saved_login_credentials(kaggle, monkeypatch, home):
    (home / ".kaggle").mkdir()
    (home / ".kaggle" / "kaggle.json").write_text(json.dumps({"username": USER}))
    assert not kaggle_api.credentials_available()
    monkeypatch.setenv("KAGGLE_KEY", KEY)   # variables complete kaggle.json, as in the client
    assert kaggle_api.credentials_available()
    monkeypatch.delenv("KAGGLE_KEY")
    (home / ".kaggle" / "credentials.json").write_text(json.dumps({"refresh_token": "r"}))
    assert kaggle_api.credentials_available()   # `kaggle auth login`


def test_missing_credentials_say_how_to_create_them(kaggle, tmp_path):
    with pytest.raises(KaggleError) as error:
        kaggle_api.download_competition(KEYPOINTS.slug, tmp_path / "staging")
    message = str(error.value)
    for hint in ("Settings -> API -> Create New Token", "~/.kaggle/", "chmod 600",
                 "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "--source sample"):
        assert hint in message
    assert "\n" not in message
    assert kaggle.requests == []


# --- downloads --------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["kaggle.json", "KAGGLE_USERNAME+KAGGLE_KEY"])
def test_keypoints_download_is_unpacked(kaggle, monkeypatch, home, tmp_path, kind):
    use_credentials(kind, monkeypatch, home)
    staging = tmp_path / "staging"
    staging.mkdir()

    files = kaggle_api.download_competition(KEYPOINTS.slug, staging)

    assert [f.relative_to(staging).as_posix() for f in files] == sorted(KEYPOINTS_FILES)
    assert {name: (staging / name).read_bytes() for name in KEYPOINTS_FILES} == KEYPOINTS_FILES
    assert sorted(p.name for p in staging.iterdir()) == sorted(KEYPOINTS_FILES)   # no zip left
    (download,) = kaggle.calls("DownloadDataFiles")
    assert download.json() == {"competitionName": KEYPOINTS.slug}
    assert download.headers["Authorization"].startswith("Basic ")
    assert kaggle.calls(f"/files/{KEYPOINTS.slug}.zip")


@pytest.mark.parametrize("kind", ["KAGGLE_API_TOKEN", "access_token file"])
def test_expressions_download_is_unpacked(kaggle, monkeypatch, home, tmp_path, kind):
    use_credentials(kind, monkeypatch, home)

    files = kaggle_api.download_competition(EXPRESSIONS.slug, tmp_path)

    assert {f.relative_to(tmp_path).as_posix() for f in files} == set(EXPRESSIONS_FILES)
    assert (tmp_path / "fer2013" / "fer2013.csv").read_bytes() == EXPRESSIONS_FILES["fer2013/fer2013.csv"]
    assert kaggle.calls("IntrospectToken")[-1].json() == {"token": TOKEN}
    assert kaggle.calls("DownloadDataFiles")[0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_wrong_key_is_rejected(kaggle, monkeypatch, home, tmp_path):
    use_credentials("kaggle.json", monkeypatch, home, key="not-the-key")
    with pytest.raises(KaggleError, match=r"rejected your credentials \(HTTP 401\)") as error:
        kaggle_api.download_competition(KEYPOINTS.slug, tmp_path)
    assert "Create New Token" in str(error.value)


def test_unknown_token_is_rejected(kaggle, monkeypatch, home, tmp_path):
    use_credentials("KAGGLE_API_TOKEN", monkeypatch, home, token="revoked-token")
    with pytest.raises(KaggleError, match="did not accept the configured credentials"):
        kaggle_api.download_competition(KEYPOINTS.slug, tmp_path)
    assert not kaggle.calls("DownloadDataFiles")


def test_rules_not_accepted_points_to_the_rules_page(kaggle, monkeypatch, home, tmp_path):
    use_credentials("kaggle.json", monkeypatch, home)
    kaggle.rules_accepted.clear()
    staging = tmp_path / "staging"
    with pytest.raises(KaggleError, match="HTTP 403") as error:
        kaggle_api.download_competition(EXPRESSIONS.slug, staging)
    assert EXPRESSIONS.rules_url in str(error.value)
    assert not staging.exists() or not any(staging.iterdir())


def test_unknown_competition(kaggle, monkeypatch, home, tmp_path):
    use_credentials("kaggle.json", monkeypatch, home)
    with pytest.raises(KaggleError, match="no competition 'no-such-thing'.*HTTP 404"):
        kaggle_api.download_competition("no-such-thing", tmp_path)


def test_unreachable_network_is_said_plainly(kaggle, monkeypatch, home, tmp_path):
    use_credentials("kaggle.json", monkeypatch, home)
    with socket.socket() as closed:   # a loopback port that nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    with pytest.raises(KaggleError, match="cannot reach Kaggle.*--source sample"):
        kaggle_api.download_competition(KEYPOINTS.slug, tmp_path)


def escaping_bundle(outside):
    return zip_bytes({"IdLookupTable.csv": b"RowId\n", "../escaped.csv": b"x"})


def bundle_with_a_link_inside(outside):
    """A bundle whose inner fer2013.tar.gz holds a symlink to a folder outside."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        link = tarfile.TarInfo("fer2013")
        link.type, link.linkname = tarfile.SYMTYPE, str(outside)
        tar.addfile(link)
    return zip_bytes({"training.zip": zip_bytes({"training.csv": b"a\n"}),
                      "fer2013.tar.gz": buffer.getvalue()})


@pytest.mark.parametrize("make_bundle, why", [
    (escaping_bundle, "'..' component"),
    (bundle_with_a_link_inside, "symbolic link"),
])
def test_hostile_bundle_is_refused_without_writing_outside(
        kaggle, monkeypatch, home, tmp_path, make_bundle, why):
    use_credentials("kaggle.json", monkeypatch, home)
    work = tmp_path / "work"
    staging = work / "staging"
    staging.mkdir(parents=True)
    kaggle.bundles[KEYPOINTS.slug] = make_bundle(work)

    with pytest.raises(UnsafeArchiveError, match=why):
        kaggle_api.download_competition(KEYPOINTS.slug, staging)
    assert [p.name for p in work.iterdir()] == ["staging"]
    assert not (staging / ".kaggle-bundle").exists()


# --- submissions ------------------------------------------------------------------------------

def test_submit_uploads_the_bytes_and_lists_the_result(kaggle, monkeypatch, home, tmp_path):
    use_credentials("KAGGLE_USERNAME+KAGGLE_KEY", monkeypatch, home)
    file = tmp_path / "keypoints.csv"
    file.write_bytes(b"RowId,Location\n1,48.5\n2,12.25\n")

    said = kaggle_api.submit(KEYPOINTS.slug, file, "first try")

    assert said == "Successfully submitted to the competition"
    assert list(kaggle.uploads.values()) == [file.read_bytes()]
    (start,) = kaggle.calls("StartSubmissionUpload")
    assert start.json()["fileName"] == "keypoints.csv"
    assert start.json()["contentLength"] == file.stat().st_size
    (listed,) = kaggle_api.list_submissions(KEYPOINTS.slug)
    assert listed["description"] == "first try" and listed["status"] == "complete"
    assert listed["publicScore"] == "3.14159" and listed["privateScore"] == "2.71828"
    assert listed["date"] and listed["fileName"]


def test_a_failed_upload_is_not_reported_as_a_submission(kaggle, monkeypatch, home, tmp_path):
    use_credentials("kaggle.json", monkeypatch, home)
    kaggle.reject_uploads = True
    file = tmp_path / "keypoints.csv"
    file.write_bytes(b"RowId,Location\n1,48.5\n")
    with pytest.raises(KaggleError, match="upload of .* failed, so nothing was submitted"):
        kaggle_api.submit(KEYPOINTS.slug, file, "first try")
    assert not kaggle.calls("CreateSubmission")


def test_client_failures_are_one_scrubbed_line():
    secret = "key-in-a-message"
    error = ValueError(f"bad thing at https://storage.example/f.zip?token=abc&sig=def\nkey {secret}")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KAGGLE_KEY", secret)
        with pytest.raises(KaggleError) as wrapped:
            with kaggle_api._errors_explained(KEYPOINTS.slug, "downloading"):
                raise error
    assert str(wrapped.value) == ("the Kaggle client failed while downloading: ValueError: bad thing "
                                  "at https://storage.example/f.zip?... key ***")


# --- secrets ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_credentials_never_reach_output_messages_or_files(
        kaggle, monkeypatch, home, tmp_path, capfd, caplog, kind):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("VERBOSE", "1")   # would make the client print request headers
    use_credentials(kind, monkeypatch, home)
    staging = tmp_path / "staging"
    staging.mkdir()
    messages = []

    kaggle_api.download_competition(KEYPOINTS.slug, staging)
    submission = tmp_path / "submission.csv"
    submission.write_text("RowId,Location\n1,2\n")
    messages.append(kaggle_api.submit(KEYPOINTS.slug, submission, "check"))
    messages.append(str(kaggle_api.list_submissions(KEYPOINTS.slug)))
    kaggle.rules_accepted.clear()
    for call in (lambda: kaggle_api.download_competition(EXPRESSIONS.slug, tmp_path / "other"),
                 lambda: kaggle_api.submit(EXPRESSIONS.slug, submission, "check")):
        with pytest.raises(KaggleError) as error:
            call()
        messages.append(str(error.value))
    kaggle.users.clear()   # now every credential is wrong
    kaggle.tokens.clear()
    with pytest.raises(KaggleError) as error:
        kaggle_api.list_submissions(KEYPOINTS.slug)
    messages.append(str(error.value))

    captured = capfd.readouterr()
    credential_files = {home / ".kaggle" / "kaggle.json", home / ".kaggle" / "access_token"}
    written = [path.read_bytes() for path in tmp_path.rglob("*")
               if path.is_file() and path not in credential_files]
    basic = base64.b64encode(f"{USER}:{KEY}".encode()).decode()   # what an Authorization header holds
    for secret in (KEY, TOKEN, basic):
        assert secret not in captured.out + captured.err
        assert secret not in caplog.text
        assert not any(secret in message for message in messages)
        assert not any(secret.encode() in data for data in written)
