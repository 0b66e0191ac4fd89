"""The only module that talks to Kaggle, through the official `kaggle` client (2.2.x).

The client is imported lazily, inside the functions that need it: importing it takes most of a
second, and it authenticates (and prints) as a side effect. Whatever goes wrong inside the client
comes out as one KaggleError line that says what to do. The client's own printing is swallowed,
because it can echo request details; credentials never reach a message, a log or a file.
"""
import base64
import contextlib
import io
import json
import os
import re
import shutil
import sys
from pathlib import Path

from pipeline.data.archives import extract_nested
from pipeline.core.competitions import COMPETITIONS
from pipeline.core.errors import PipelineError

HOW_TO_GET_CREDENTIALS = (
    "on kaggle.com open Settings -> API -> Create New Token and save kaggle.json in ~/.kaggle/ "
    "(chmod 600 ~/.kaggle/kaggle.json), or set KAGGLE_USERNAME and KAGGLE_KEY, or KAGGLE_API_TOKEN")
NO_CREDENTIALS = (
    f"no Kaggle credentials found: {HOW_TO_GET_CREDENTIALS}; or use --source sample to run offline")
_BUNDLE_FOLDER = ".kaggle-bundle"   # inside dest, so nothing is written outside the caller's folder


class KaggleError(PipelineError):
    """Kaggle could not be reached or refused a request; the message says what to do about it."""


def credentials_available() -> bool:
    """Whether any credential that the installed client accepts is configured. Sends nothing."""
    return _api_key_configured() or _access_token_configured() or _oauth_login_saved()


def download_competition(slug: str, dest: Path, show_progress: bool = False) -> list[Path]:
    """Download competition `slug`'s files into the empty folder `dest` and unpack them there.

    Nested archives are unpacked too (see archives.extract_nested) and the downloaded bundle is
    removed. Returns the files, sorted. Raises KaggleError, or UnsafeArchiveError for a hostile
    bundle; either way `dest` may hold a partial result, so the caller should discard it.
    """
    dest = Path(dest)
    bundle_folder = dest / _BUNDLE_FOLDER
    try:
        with _kaggle(slug, f"downloading {slug}") as api:
            api.competition_download_files(slug, path=str(bundle_folder), force=True, quiet=not show_progress)
        return extract_nested(_downloaded_bundle(bundle_folder), dest)
    finally:
        shutil.rmtree(bundle_folder, ignore_errors=True)


def submit(slug: str, file: Path, message: str) -> str:
    """Upload `file` as a submission to competition `slug`; return what Kaggle said."""
    file = Path(file)
    with _kaggle(slug, f"submitting {file.name} to {slug}") as api:
        response = api.competition_submit(str(file), message, slug, quiet=True)
        upload_failed = response.message == api.COMPETITION_SUBMIT_UPLOAD_FAILED_MESSAGE
    if upload_failed:
        raise KaggleError(f"the upload of {file} to Kaggle failed, so nothing was submitted; "
                          "try again in a few minutes")
    return response.message


def list_submissions(slug: str) -> list[dict]:
    """The latest submissions to `slug`, newest first, one dict each with the keys
    date, description, status ("pending", "complete" or "error"), publicScore, privateScore,
    fileName, errorDescription and ref. Scores are strings as Kaggle gives them, or None."""
    with _kaggle(slug, f"listing the submissions to {slug}") as api:
        submissions = api.competition_submissions(slug) or []
    return [_submission_dict(submission) for submission in submissions if submission is not None]


def submissions_table(competition):
    """Lines of your latest submissions to `competition`, with their status and scores."""
    lines = [f"{competition.task} ({competition.slug}):"]
    for s in list_submissions(competition.slug):
        lines.append(f"  {s['date'] or '':<19}  {s['status']:<8}  public {s['publicScore'] or '-':>8}  "
                     f"private {s['privateScore'] or '-':>8}  {s['fileName'] or ''}  {s['description'] or ''}")
    return lines if len(lines) > 1 else lines + ["  no submissions yet"]


def _submission_dict(submission):
    date = submission.date
    return {
        "date": date.isoformat(sep=" ", timespec="seconds") if date else None,
        "description": submission.description,
        "status": submission.status.name.lower(),
        "publicScore": submission.public_score,
        "privateScore": submission.private_score,
        "fileName": submission.file_name,
        "errorDescription": submission.error_description,
        "ref": submission.ref,
    }


def _downloaded_bundle(folder):
    # The client names the file after the competition and whatever follows the last dot of the
    # URL it was sent to, and may leave a ".kaggle-partial" resume marker beside it.
    bundles = [path for path in folder.rglob("*")
               if path.is_file() and not path.name.endswith(".kaggle-partial")]
    if len(bundles) != 1:
        raise KaggleError(f"the Kaggle client left {len(bundles)} files instead of one bundle "
                          f"in {folder}")
    return bundles[0]


# --- credentials, read the way kaggle 2.2.4 reads them ----------------------------------------

def _config_dir():
    """Where KaggleApi looks for kaggle.json."""
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        return Path(os.environ["KAGGLE_CONFIG_DIR"])
    legacy = Path.home() / ".kaggle"
    if sys.platform.startswith("linux") and not legacy.exists():
        return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "kaggle"
    return legacy


def _api_key_configured():
    # KaggleApi reads kaggle.json, lets any KAGGLE_<NAME> variable override its "<name>" entry,
    # then needs a username and a key.
    config = _read_json(_config_dir() / "kaggle.json")
    config.update({name[len("KAGGLE_"):].lower(): value for name, value in os.environ.items()
                   if name.startswith("KAGGLE_")})
    return bool(config.get("username")) and bool(config.get("key"))


def _access_token_configured():
    # KAGGLE_API_TOKEN (a token, or a file holding one), ~/.kaggle/access_token[.txt], or the
    # token file of a Kaggle notebook: ask the client itself, so a new source is not missed.
    from kagglesdk.kaggle_env import get_access_token_from_env  # the client's SDK: see the module docstring

    token, _ = get_access_token_from_env()
    return bool(token)


def _oauth_login_saved():
    # `kaggle auth login` stores a refresh token here.
    return bool(_read_json(Path.home() / ".kaggle" / "credentials.json").get("refresh_token"))


def _read_json(path):
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _secrets():
    """Every credential value configured, so that a message can be scrubbed of them."""
    config = _read_json(_config_dir() / "kaggle.json")
    username = os.environ.get("KAGGLE_USERNAME") or config.get("username")
    keys = [os.environ.get("KAGGLE_KEY"), config.get("key")]
    # An echoed "Authorization: Basic ..." header holds username:key in base64.
    values = keys + [base64.b64encode(f"{username}:{key}".encode()).decode() for key in keys if key]
    values += [os.environ.get("KAGGLE_API_TOKEN")]
    values += _read_json(Path.home() / ".kaggle" / "credentials.json").values()
    for name in ("access_token", "access_token.txt"):
        with contextlib.suppress(OSError):
            values.append((Path.home() / ".kaggle" / name).read_text().strip())
    return [value for value in values if isinstance(value, str) and len(value) >= 4]


# --- the client -------------------------------------------------------------------------------

@contextlib.contextmanager
def _kaggle(slug, action):
    """An authenticated KaggleApi; whatever fails inside becomes a KaggleError about `action`."""
    if not credentials_available():
        raise KaggleError(NO_CREDENTIALS)
    with _errors_explained(slug, action), contextlib.redirect_stdout(io.StringIO()):
        api = _new_client()
        api.authenticate()
        yield api


def _new_client():
    # Importing `kaggle` authenticates and prints; with VERBOSE set it also turns on debug logging.
    with _environment_without("VERBOSE", "VERBOSE_OUTPUT"):
        from kaggle.api.kaggle_api_extended import KaggleApi  # see the module docstring
    api = KaggleApi()
    # KaggleApi fixes these when its module is first imported; read them again now, so that the
    # settings in force at this call apply.
    config_dir = _config_dir()
    api.config_dir, api.config = str(config_dir), str(config_dir / "kaggle.json")
    # Never "--verbose": the client would print every request's headers, Authorization included.
    api.args = ["--local"] if os.environ.get("KAGGLE_API_ENVIRONMENT") == "LOCALHOST" else []
    return api


@contextlib.contextmanager
def _environment_without(*names):
    saved = {name: os.environ.pop(name) for name in names if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


@contextlib.contextmanager
def _errors_explained(slug, action):
    import requests  # the client's transport, loaded with the client

    try:
        yield
    except requests.HTTPError as error:
        status = error.response.status_code if error.response is not None else None
        raise KaggleError(_http_message(status, slug, action)) from None
    except (requests.ConnectionError, requests.Timeout):
        raise KaggleError(f"cannot reach Kaggle while {action}: the network is unreachable or a "
                          "proxy refused; check your connection, or use --source sample to run "
                          "offline") from None
    except SystemExit:
        # KaggleApi.authenticate() exits when no credential it found was accepted; we checked
        # before that one was configured, so it was refused (an expired or revoked token).
        raise KaggleError(f"Kaggle did not accept the configured credentials while {action}: "
                          f"{HOW_TO_GET_CREDENTIALS}") from None
    except Exception as error:
        raise KaggleError(f"the Kaggle client failed while {action}: "
                          f"{type(error).__name__}: {_scrub(str(error))}") from None


def _http_message(status, slug, action):
    if status == 401:
        return (f"Kaggle rejected your credentials (HTTP 401) while {action}; "
                f"check them or make new ones: {HOW_TO_GET_CREDENTIALS}")
    if status == 403:
        return (f"Kaggle refused {action} (HTTP 403): you have not accepted the competition's "
                f"rules; accept them at {_rules_url(slug)} and try again")
    if status == 404:
        return f"Kaggle has no competition {slug!r} open to this request (HTTP 404)"
    if status == 429:
        return f"Kaggle is rate-limiting requests (HTTP 429) while {action}; wait and try again"
    if status is not None and status >= 500:
        return f"Kaggle had a server error (HTTP {status}) while {action}; try again later"
    return f"Kaggle answered HTTP {status} while {action}"


def _rules_url(slug):
    for competition in COMPETITIONS.values():
        if competition.slug == slug:
            return competition.rules_url
    return f"https://www.kaggle.com/competitions/{slug}/rules"


def _scrub(text):
    """One line, without URL query strings (signed URLs carry tokens) or credential values."""
    text = re.sub(r"(https?://[^\s?'\"]*)\?[^\s'\"]*", r"\1?...", " ".join(text.split()))
    for secret in _secrets():
        text = text.replace(secret, "***")
    return text[:300]
