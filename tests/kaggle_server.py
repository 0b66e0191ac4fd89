"""A loopback stand-in for Kaggle's API that the real `kaggle` client (2.2.4) talks to in tests.

With KAGGLE_API_ENVIRONMENT=LOCALHOST the client addresses `http://localhost/api/v1/<service>/<rpc>`
(every call a JSON POST). Pointing `http_proxy` at this server, bound to 127.0.0.1, makes those
requests, the redirect that follows a download and the upload PUT arrive here instead of at port 80.
It answers the calls the pipeline makes and records every request, so tests can assert on what the
client really sent:

    POST /api/v1/security.OAuthService/IntrospectToken                      (KAGGLE_API_TOKEN)
    POST /api/v1/competitions.CompetitionApiService/DownloadDataFiles       -> 302 to /files/<slug>.zip
    GET  /files/<slug>.zip                                                  -> the bundle
    POST /api/v1/competitions.CompetitionApiService/StartSubmissionUpload   -> token + upload URL
    PUT  /uploads/<token>                                                   -> stores the bytes
    POST /api/v1/competitions.CompetitionApiService/CreateSubmission
    POST /api/v1/competitions.CompetitionApiService/ListSubmissions

Also here: `keypoints_bundle()` and `expressions_bundle()`, small zips in the real Kaggle layouts.
"""
import base64
import io
import json
import os
import tarfile
import threading
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import numpy as np

COMPETITION_API = "/api/v1/competitions.CompetitionApiService/"
INTROSPECT = "/api/v1/security.OAuthService/IntrospectToken"
RULES_NOT_ACCEPTED = "You must accept this competition's rules before you'll be able to do that"


@dataclass
class Request:
    method: str
    path: str
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body or b"{}")


@dataclass
class FakeKaggle:
    """What the fake service knows. Tests change these fields between requests."""
    users: dict = field(default_factory=dict)          # username -> API key (Basic auth)
    tokens: dict = field(default_factory=dict)         # access token -> username (Bearer auth)
    bundles: dict = field(default_factory=dict)        # slug -> bytes of its files bundle
    rules_accepted: set = field(default_factory=set)   # slugs the user may download / submit to
    requests: list = field(default_factory=list)       # every Request received, in order
    uploads: dict = field(default_factory=dict)        # upload token -> bytes received
    submissions: dict = field(default_factory=dict)    # slug -> ApiSubmission JSON dicts, newest first
    reject_uploads: bool = False                       # answer upload PUTs with 400

    def reset(self):
        self.__init__()

    def calls(self, rpc=None):
        """Requests received, or only those of one RPC ("DownloadDataFiles", ...) or path."""
        return [r for r in self.requests if rpc is None or r.path.endswith("/" + rpc)
                or r.path == rpc]


class KaggleServer:
    """Serves a FakeKaggle on 127.0.0.1; use as a context manager, or start() and stop()."""

    def __init__(self):
        self.state = FakeKaggle()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def proxy_url(self):
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def record(self, request):
        with self._lock:
            self.state.requests.append(request)


def point_client_at(server, monkeypatch, home):
    """Send the kaggle client to `server`, with `home` as ~ and none of the user's own settings.

    The client then addresses http://localhost/...; http_proxy routes that to the server.
    """
    for name in list(os.environ):
        if name.startswith("KAGGLE_") or name.lower() in (
                "http_proxy", "https_proxy", "all_proxy", "no_proxy", "xdg_config_home",
                "verbose", "verbose_output"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "LOCALHOST")
    monkeypatch.setenv("http_proxy", server.proxy_url)
    monkeypatch.setenv("HTTP_PROXY", server.proxy_url)


def _handler_for(server):
    class Handler(_KaggleHandler):
        kaggle = server
    return Handler


class _KaggleHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    kaggle = None   # the KaggleServer, set by _handler_for

    def log_message(self, *args):   # keep test output clean
        pass

    def do_GET(self):
        self._handle()

    def do_POST(self):
        self._handle()

    def do_PUT(self):
        self._handle()

    # --- plumbing -----------------------------------------------------------------------------

    def _handle(self):
        # Through a proxy the request line carries the absolute URL: http://localhost/api/v1/...
        request = Request(self.command, urlsplit(self.path).path, dict(self.headers), self._body())
        self.kaggle.record(request)
        route = _route(request.method, request.path)
        if route is None:
            return self._error(404, f"no route for {request.method} {request.path}")
        with self.kaggle._lock:
            route(self, request, self.kaggle.state)

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status, body=b"", content_type="application/json", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, data, status=200):
        self._send(status, json.dumps(data).encode())

    def _error(self, status, message):
        # Kaggle's error body; kagglesdk raises HTTPError(message) from it.
        self._json({"code": status, "message": message}, status)

    def _user(self, request, state):
        """The signed-in username, or None after answering 401."""
        kind, _, credential = request.headers.get("Authorization", "").partition(" ")
        if kind == "Basic":
            username, _, key = base64.b64decode(credential).decode().partition(":")
            if state.users.get(username) == key:
                return username
        if kind == "Bearer" and credential in state.tokens:
            return state.tokens[credential]
        self._error(401, "Unauthenticated")
        return None

    def _competition(self, request, state):
        """The competition slug the user may use, or None after answering 401/403/404."""
        if self._user(request, state) is None:
            return None
        slug = request.json().get("competitionName")
        if slug not in state.bundles:
            self._error(404, "Competition not found")
            return None
        if slug not in state.rules_accepted:
            self._error(403, RULES_NOT_ACCEPTED)
            return None
        return slug

    # --- the service --------------------------------------------------------------------------

    def introspect_token(self, request, state):
        username = state.tokens.get(request.json().get("token"))
        self._json({"active": True, "username": username} if username else {"active": False})

    def download_data_files(self, request, state):
        if slug := self._competition(request, state):
            # Kaggle redirects to a signed storage URL; the client follows it with a GET.
            self._send(302, headers=[("Location", f"http://localhost/files/{slug}.zip")])

    def serve_file(self, request, state):
        slug = request.path.removeprefix("/files/").removesuffix(".zip")
        if slug not in state.bundles:
            return self._error(404, "No such file")
        self._send(200, state.bundles[slug], "application/zip")

    def start_submission_upload(self, request, state):
        if self._competition(request, state):
            token = f"upload-{len(state.uploads) + 1}"
            state.uploads[token] = None   # created, nothing received yet
            self._json({"token": token, "createUrl": f"http://localhost/uploads/{token}"})

    def receive_upload(self, request, state):
        token = request.path.removeprefix("/uploads/")
        if token not in state.uploads:
            return self._error(404, "Upload expired")
        if state.reject_uploads:
            return self._error(400, "Bad upload")
        state.uploads[token] = request.body
        self._json({})

    def create_submission(self, request, state):
        if not (slug := self._competition(request, state)):
            return
        body = request.json()
        token = body.get("blobFileTokens")
        if state.uploads.get(token) is None:
            return self._error(400, "Submission file was not uploaded")
        submissions = state.submissions.setdefault(slug, [])
        ref = sum(len(s) for s in state.submissions.values()) + 1
        submissions.insert(0, {
            "ref": ref,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "description": body.get("submissionDescription", ""),
            "fileName": f"{token}.csv",
            "status": "COMPLETE",
            "publicScore": "3.14159",
            "privateScore": "2.71828",
        })
        self._json({"message": "Successfully submitted to the competition", "ref": ref})

    def list_submissions(self, request, state):
        if slug := self._competition(request, state):
            self._json({"submissions": state.submissions.get(slug, []), "nextPageToken": ""})


ROUTES = {
    ("POST", INTROSPECT): _KaggleHandler.introspect_token,
    ("POST", COMPETITION_API + "DownloadDataFiles"): _KaggleHandler.download_data_files,
    ("POST", COMPETITION_API + "StartSubmissionUpload"): _KaggleHandler.start_submission_upload,
    ("POST", COMPETITION_API + "CreateSubmission"): _KaggleHandler.create_submission,
    ("POST", COMPETITION_API + "ListSubmissions"): _KaggleHandler.list_submissions,
}
PREFIX_ROUTES = {
    ("GET", "/files/"): _KaggleHandler.serve_file,
    ("PUT", "/uploads/"): _KaggleHandler.receive_upload,
}


def _route(method, path):
    if (method, path) in ROUTES:
        return ROUTES[method, path]
    return next((handler for (m, prefix), handler in PREFIX_ROUTES.items()
                 if m == method and path.startswith(prefix)), None)


# --- bundles in the real layouts ----------------------------------------------------------------

def zip_bytes(files):
    """A zip holding {name: bytes}."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data in files.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def tar_gz_bytes(files):
    """A .tar.gz holding {name: bytes}."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        for name, data in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            bundle.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def _pixels(rng, rows, size):
    images = rng.integers(0, 256, size=(rows, size * size))
    return [" ".join(map(str, image)) for image in images]


def keypoints_csvs(rows=4, seed=0):
    """The four keypoints files, {name: bytes}, a few rows each."""
    from pipeline.core.competitions import KEYPOINT_COLUMNS

    rng = np.random.default_rng(seed)
    points = rng.uniform(10, 86, size=(rows, len(KEYPOINT_COLUMNS))).round(4)
    training = [",".join(KEYPOINT_COLUMNS + ("Image",))]
    training += [",".join(map(str, p)) + "," + image for p, image in zip(points, _pixels(rng, rows, 96))]
    test = ["ImageId,Image"] + [f"{i},{image}" for i, image in enumerate(_pixels(rng, rows, 96), 1)]
    lookup, sample = ["RowId,ImageId,FeatureName,Location"], ["RowId,Location"]
    for row_id, (image_id, feature) in enumerate(
            ((i, f) for i in range(1, rows + 1) for f in KEYPOINT_COLUMNS[:4]), 1):
        lookup.append(f"{row_id},{image_id},{feature},")
        sample.append(f"{row_id},0")
    texts = {"training.csv": training, "test.csv": test, "IdLookupTable.csv": lookup,
             "SampleSubmission.csv": sample}
    return {name: ("\n".join(lines) + "\n").encode() for name, lines in texts.items()}


def keypoints_bundle(rows=4, seed=0):
    """(zip bytes, {final file name: bytes}) as Kaggle serves facial-keypoints-detection."""
    csvs = keypoints_csvs(rows, seed)
    bundle = zip_bytes({
        "training.zip": zip_bytes({"training.csv": csvs["training.csv"]}),
        "test.zip": zip_bytes({"test.csv": csvs["test.csv"]}),
        "IdLookupTable.csv": csvs["IdLookupTable.csv"],
        "SampleSubmission.csv": csvs["SampleSubmission.csv"],
    })
    return bundle, csvs


def expressions_bundle(rows=6, seed=0):
    """(zip bytes, {final file name: bytes}) as Kaggle serves the FER2013 challenge."""
    rng = np.random.default_rng(seed)
    labels, pixels = rng.integers(0, 7, rows), _pixels(rng, rows, 48)
    usages = ["Training", "PublicTest", "PrivateTest"] * rows
    fer = ["emotion,pixels,Usage"] + [f"{y},{p},{u}" for y, p, u in zip(labels, pixels, usages)]
    icml = ["emotion, Usage, pixels"] + [f"{y},{u},{p}" for y, p, u in zip(labels, pixels, usages)]
    final = {
        "fer2013/fer2013.csv": fer,
        "fer2013/README": ["FER2013, as shipped in fer2013.tar.gz"],
        "train.csv": ["emotion,pixels"] + [f"{y},{p}" for y, p in zip(labels, pixels)],
        "test.csv": ["pixels"] + pixels,
        "icml_face_data.csv": icml,
        "example_submission.csv": ["Emotion"] + [str(y) for y in labels],
    }
    final = {name: ("\n".join(lines) + "\n").encode() for name, lines in final.items()}
    inner = tar_gz_bytes({name: data for name, data in final.items() if name.startswith("fer2013/")})
    bundle = zip_bytes({"fer2013.tar.gz": inner,
                        **{name: data for name, data in final.items() if "/" not in name}})
    return bundle, final
