"""The web page in real headless Chromium, its camera Chromium's fake one playing a generated clip of a
face: the page turns the camera on by itself (?camera), sends frames to the server and draws the
answers over them; a screenshot shows them. Skipped where Debian's `chromium` is not installed."""
import base64
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("uvicorn")

from pipeline.serving import server  # noqa: E402
from test_faces import FACE_AT, FACE_SIDE, face_photo, spread_out_stand_ins  # noqa: E402
from test_server import Running  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
GREEN, RED = (0, 255, 0), (0, 0, 255)   # BGR: the page's boxes and keypoints


def write_y4m(path, frames=30, fps=10):
    """A 640x480 YUV4MPEG2 clip (the format Chromium's fake camera plays): face_photo's face, moving."""
    photo, _ = face_photo()
    face = photo[FACE_AT[1]:FACE_AT[1] + FACE_SIDE, FACE_AT[0]:FACE_AT[0] + FACE_SIDE]
    background = cv2.GaussianBlur(np.random.default_rng(2).integers(0, 256, (480, 640, 3), dtype=np.uint8), (0, 0), 6)
    with open(path, "wb") as handle:
        handle.write(f"YUV4MPEG2 W640 H480 F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            frame = background.copy()
            x, y = 150 + 4 * i, 120
            frame[y:y + FACE_SIDE, x:x + FACE_SIDE] = face
            handle.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())   # Y, U, V planes


def pixels_of(image, bgr, tolerance=40):
    return np.all(np.abs(image.astype(int) - bgr) < tolerance, axis=-1)


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe: JSON
    messages ended by a NUL byte, on the child's file descriptors 3 and 4), so no websocket client
    is needed. Only what this test uses: open a page, evaluate JavaScript, take a screenshot."""

    def __init__(self, flags, profile):
        to_chromium, self._to_chromium = os.pipe()
        self._from_chromium, from_chromium = os.pipe()

        def descriptors():   # in the child, before exec: the pipe ends where Chromium looks for them
            os.dup2(to_chromium, 3)
            os.dup2(from_chromium, 4)

        self.process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--remote-debugging-pipe",
             f"--user-data-dir={profile}", *flags, "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=descriptors, pass_fds=(3, 4))   # kept open by their numbers, after descriptors()
        os.close(to_chromium)
        os.close(from_chromium)
        self._buffer, self._id, self.session = b"", 0, None

    def send(self, method, timeout=30, **params):
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        os.write(self._to_chromium, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" not in self._buffer:
                if not select.select([self._from_chromium], [], [], max(0.0, deadline - time.monotonic()))[0]:
                    raise TimeoutError(f"chromium did not answer {method}")
                chunk = os.read(self._from_chromium, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the pipe")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self._id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]

    def open(self, url):
        target = self.send("Target.createTarget", url=url)["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def evaluate(self, expression):
        return self.send("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def screenshot(self, path):
        Path(path).write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))

    def close(self):
        self.process.kill()
        self.process.wait(10)
        os.close(self._to_chromium)
        os.close(self._from_chromium)


def test_the_page_draws_predictions_over_the_fake_camera(tmp_path):
    clip, shot = tmp_path / "face.y4m", tmp_path / "page.png"
    write_y4m(clip)
    app = server.create_app(spread_out_stand_ins())
    with Running(app) as running:
        browser = Chromium(["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                            f"--use-file-for-fake-video-capture={clip}", "--window-size=800,900"], tmp_path / "profile")
        try:
            browser.send("Target.setDiscoverTargets", discover=False)
            browser.open(f"http://127.0.0.1:{running.port}/?camera")
            frames = 0
            deadline = time.monotonic() + 60
            while frames < 5 and time.monotonic() < deadline:   # the page counts the answers it drew
                time.sleep(0.2)
                frames = int(browser.evaluate("document.getElementById('status').dataset.frames") or 0)
            status = browser.evaluate("document.getElementById('status').textContent + ' ' + "
                                      "document.getElementById('error').textContent")
            browser.screenshot(shot)
        finally:
            browser.close()
    assert frames >= 5, f"the page drew {frames} answers: {status}"
    assert app.state.requests >= 5
    image = cv2.imread(str(shot))
    green, red = pixels_of(image, GREEN), pixels_of(image, RED)
    # A box around the face: green pixels spanning about the face's size, and the keypoints' red dots.
    rows, columns = np.flatnonzero(green.any(axis=1)), np.flatnonzero(green.any(axis=0))
    assert green.sum() > 4 * FACE_SIDE and np.ptp(columns) > 0.7 * FACE_SIDE and np.ptp(rows) > 0.7 * FACE_SIDE
    assert red.sum() > 15 * 4
