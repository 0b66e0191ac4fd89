"""server: `run.py serve`, an HTTP server answering photos and camera frames with predict-image's JSON.

FastAPI on uvicorn: an ASGI stack that is well kept and widely deployed, whose event loop holds
thousands of idle connections cheaply, and that parses multipart uploads (python-multipart) and
answers wrong methods (405) for us. The models are loaded once, before the first request.

    POST /predict   an image as the multipart field `image` (several `image` fields: one batch),
                    or the raw body with an image content type (image/jpeg, image/png, ...)
    GET  /health    the runs loaded: task, run, model, validation score
    GET  /          the web page (page.html: no external resources): drop a photo, or the camera

Where the work happens: the event loop only reads requests and writes answers. Decoding and face
detection (OpenCV, which releases the GIL) run in worker threads, at most one per core at a time;
the models run in one thread of their own (Batcher), which takes every request waiting and predicts
all their faces in one batch per task, so 32 clients at once cost one model call, not 32. Uploads
stay in memory (uploads.py); a bad request is answered with a JSON error and a 4xx status and
touches nothing else.
"""
import asyncio
import concurrent.futures
import os
import queue
import socket
import threading
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import cv2
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from pipeline.core.competitions import VALIDATION_METRIC
from pipeline.core.errors import PipelineError
from pipeline.serving.faces import answer_faces, find_faces, live_tta
from pipeline.serving.photos import describe_photo
from pipeline.serving.uploads import MAX_BYTES, MAX_IMAGES, MAX_PIXELS, UploadError, decode_image

PAGE = Path(__file__).with_name("page.html")
FIELD = "image"
MAX_JOBS = 64   # requests answered by one model call at most


def run_summary(run):
    """What /health says of a loaded run (a RunDir): its validation score under the TTA it serves with."""
    metric, tta = VALIDATION_METRIC[run.task][0], live_tta(run)
    return {"task": run.task, "run": run.name, "model": run.params.get("model"), "tta": tta,
            "metric": metric, "validation_score": run.score(tta)}


class Batcher:
    """One thread that runs the models: it takes every job queued since its last batch (up to
    MAX_JOBS) and answers all their faces together (faces.answer_faces)."""

    def __init__(self, predictors):
        self.predictors = predictors
        self.jobs = queue.Queue()
        self.batches = 0
        self.thread = threading.Thread(target=self._work, name="predict", daemon=True)
        self.thread.start()

    def submit(self, grays, found):
        """A Future of `found` answered: one list of faces per image of `grays`."""
        future = concurrent.futures.Future()
        self.jobs.put((grays, found, future))
        return future

    def close(self):
        self.jobs.put(None)
        self.thread.join()

    def _work(self):
        while True:
            jobs = [self.jobs.get()]
            while len(jobs) < MAX_JOBS and jobs[-1] is not None:
                try:
                    jobs.append(self.jobs.get_nowait())
                except queue.Empty:
                    break
            stop = jobs[-1] is None
            # A request whose client went away was cancelled: skip it; the others can no longer be.
            jobs = [job for job in jobs if job is not None and job[2].set_running_or_notify_cancel()]
            if jobs:
                self._answer(jobs)
            if stop:
                return

    def _answer(self, jobs):
        grays = [gray for job in jobs for gray in job[0]]
        found = [faces for job in jobs for faces in job[1]]
        try:
            answer_faces(grays, found, self.predictors)
        except Exception as error:   # the model failed: every waiting request hears it, the thread goes on
            for *_, future in jobs:
                future.set_exception(error)
            return
        self.batches += 1
        for *_, future in jobs:
            future.set_result(None)


class InMemoryParser(MultiPartParser):
    spool_max_size = MAX_IMAGES * MAX_BYTES   # every part stays in memory: nothing on disk to leave behind


async def read_images(request, max_bytes=MAX_BYTES):
    """[(name, bytes)] of a POST /predict: multipart fields `image`, or the raw body of an image type."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    multipart = content_type == "multipart/form-data"
    if not multipart and not content_type.startswith("image/"):
        raise UploadError(f"send the image as the multipart field '{FIELD}' or as the body with an image "
                          f"content type (got {content_type or 'no content type'!r})", 415)
    limit = max_bytes * MAX_IMAGES + 64 * 1024 if multipart else max_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise UploadError(f"the request is too large ({int(declared):,} bytes; at most {limit:,})", 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise UploadError(f"the request is too large (over {limit:,} bytes)", 413)
    if not multipart:
        return [("body", bytes(body))]

    async def whole():
        yield bytes(body)

    try:
        form = await InMemoryParser(request.headers, whole(), max_files=MAX_IMAGES, max_fields=MAX_IMAGES).parse()
    except MultiPartException as error:
        raise UploadError(f"malformed multipart body: {error.message}") from None
    try:
        parts = form.getlist(FIELD)
        if not parts:
            raise UploadError(f"no multipart field '{FIELD}' (fields sent: {sorted(set(form.keys())) or 'none'})")
        images = []
        for index, part in enumerate(parts):
            if not isinstance(part, UploadFile):
                raise UploadError(f"the field '{FIELD}' must be a file, not text")
            name = part.filename or f"{FIELD}[{index}]"
            data = await part.read()
            if len(data) > max_bytes:
                raise UploadError(f"{name}: too large ({len(data):,} bytes; at most {max_bytes:,})", 413)
            images.append((name, data))
        return images
    finally:
        await form.close()


def create_app(predictors, runs=None, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS):
    """The ASGI app answering with `predictors` (task -> faces.Predictor); `runs` (task -> run_summary)
    is what /health shows."""
    state = {}

    @asynccontextmanager
    async def lifespan(app):
        state["limiter"] = anyio.CapacityLimiter(len(os.sched_getaffinity(0)))
        yield
        if "batcher" in state:
            state.pop("batcher").close()

    app = FastAPI(title="faces", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.requests = 0   # POST /predict answered, errors included (the tests read it)

    def batcher():
        if "batcher" not in state:
            state["batcher"] = Batcher(predictors)
        return state["batcher"]

    def limiter():
        if "limiter" not in state:   # an app run without its lifespan (some test clients)
            state["limiter"] = anyio.CapacityLimiter(len(os.sched_getaffinity(0)))
        return state["limiter"]

    def prepare(name, data):
        image = decode_image(data, name, max_pixels)
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        return image.shape, gray, find_faces(gray)

    @app.exception_handler(UploadError)
    async def refused(request, error):
        return JSONResponse({"error": str(error), "status": error.status}, status_code=error.status)

    @app.exception_handler(HTTPException)
    async def http_error(request, error):
        return JSONResponse({"error": str(error.detail), "status": error.status_code}, status_code=error.status_code,
                            headers=getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def failed(request, error):
        return JSONResponse({"error": f"internal error: {type(error).__name__}: {error}", "status": 500},
                            status_code=500)

    @app.post("/predict")
    async def predict(request: Request):
        app.state.requests += 1
        images = await read_images(request, max_bytes)
        prepared = [await anyio.to_thread.run_sync(prepare, name, data, limiter=limiter()) for name, data in images]
        grays, found = [p[1] for p in prepared], [p[2] for p in prepared]
        await asyncio.wrap_future(batcher().submit(grays, found))
        answers = [describe_photo(shape, faces, name, predictors)
                   for (name, _), (shape, _, faces) in zip(images, prepared)]
        return answers[0] if len(answers) == 1 else {"images": answers}

    @app.get("/health")
    async def health():
        return {"status": "ok", "runs": runs or {task: {"task": task, "run": p.run} for task, p in predictors.items()},
                "limits": {"bytes": max_bytes, "pixels": max_pixels, "images": MAX_IMAGES}}

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))

    return app


def listening_socket(host, port):
    """A socket bound to host:port, or PipelineError saying why not (uvicorn would log it and exit)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        raise PipelineError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    return listener


def serve(app, listener, echo=print):
    """Run `app` on the bound socket `listener` (listening_socket) until Ctrl-C."""
    host, port = listener.getsockname()[:2]
    echo(f"serving on http://{host}:{port}/ (Ctrl-C stops)")
    try:
        uvicorn.Server(uvicorn.Config(app, log_level="info")).run(sockets=[listener])
    finally:
        listener.close()
