"""server: POST /predict answers predict-image's JSON, refuses bad requests with a JSON 4xx and keeps answering."""
import concurrent.futures
import http.client
import json
import socket
import struct
import tempfile
import threading
import time
import zlib

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("fastapi")
from click.testing import CliRunner  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from pipeline.cli import cli  # noqa: E402
from pipeline.core.competitions import EXPRESSIONS, KEYPOINT_NAMES, KEYPOINTS  # noqa: E402
from pipeline.core.errors import PipelineError  # noqa: E402
from pipeline.inference.rundir import RunDir  # noqa: E402
from pipeline.serving import faces, server  # noqa: E402
from test_faces import FACE_AT, FACE_SIDE, face_photo, spread_out_stand_ins, stand_ins  # noqa: E402


def png(image):
    return cv2.imencode(".png", image)[1].tobytes()


def jpeg(image):
    return cv2.imencode(".jpg", image)[1].tobytes()


def bomb_png(width, height):
    """A valid PNG of a few hundred bytes whose header says width x height (grey, 8 bits): a
    decompression bomb, if anything decoded it in full."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = zlib.compress(b"\x00" * (width + 1) * 4)   # the first 4 rows; a decoder would read on
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


@pytest.fixture
def client():
    with TestClient(server.create_app(stand_ins())) as test_client:
        yield test_client


def test_a_photo_gets_each_faces_box_keypoints_and_probabilities(client):
    photo, _ = face_photo()
    response = client.post("/predict", files={"image": ("face.png", png(photo), "image/png")})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["image"], answer["width"], answer["height"]) == ("face.png", 400, 300)
    assert answer["runs"] == {"keypoints": "kp-run", "expressions": "ex-run"}
    [face] = answer["faces"]
    x, y, side = face["crop"]
    for point in face["keypoints"].values():   # the stand-in answers the crop's centre
        np.testing.assert_allclose(point, [x + side / 2, y + side / 2], atol=1)
    assert face["expression"] == "Happy"


def test_the_keypoints_come_back_in_the_photos_pixels_where_the_face_has_them():
    photo, true_points = face_photo()   # the average face, drawn: the stand-in answers its keypoints
    with TestClient(server.create_app(spread_out_stand_ins())) as client:
        [face] = client.post("/predict", files={"image": ("face.jpg", jpeg(photo), "image/jpeg")}).json()["faces"]
    answered = np.array([face["keypoints"][name] for name in KEYPOINT_NAMES])
    crop_pixel = face["crop"][2] / 96
    assert np.abs(answered - true_points).max() < 10 * crop_pixel


def test_the_raw_body_with_an_image_type_is_one_image(client):
    response = client.post("/predict", content=jpeg(face_photo()[0]), headers={"content-type": "image/jpeg"})
    assert response.status_code == 200 and len(response.json()["faces"]) == 1
    assert response.json()["image"] == "body"


def test_several_images_in_one_request_are_one_batch_answered_in_order(client):
    photo, blank = face_photo()[0], np.full((120, 160, 3), 128, np.uint8)
    files = [("image", ("a.png", png(photo), "image/png")), ("image", ("b.png", png(blank), "image/png")),
             ("image", ("c.jpg", jpeg(photo), "image/jpeg"))]
    batches = client.app.state.requests
    response = client.post("/predict", files=files)
    assert response.status_code == 200, response.text
    answers = response.json()["images"]
    assert [a["image"] for a in answers] == ["a.png", "b.png", "c.jpg"]
    assert [len(a["faces"]) for a in answers] == [1, 0, 1]
    assert client.app.state.requests == batches + 1


def test_health_names_the_runs_and_the_page_needs_nothing_from_elsewhere(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["runs"]["keypoints"]["run"] == "kp-run"
    page = client.get("/")
    assert page.status_code == 200 and "getUserMedia" in page.text
    assert "http://" not in page.text and "https://" not in page.text and "src=\"//" not in page.text


def bad_requests():
    photo = png(face_photo()[0])
    return {
        "not an image": (400, dict(files={"image": ("x.png", b"hello, not an image", "image/png")})),
        "truncated png": (400, dict(files={"image": ("cut.png", photo[:len(photo) // 2], "image/png")})),
        "truncated jpeg": (400, dict(files={"image": ("cut.jpg", jpeg(face_photo()[0])[:3000], "image/jpeg")})),
        "empty": (400, dict(files={"image": ("empty.png", b"", "image/png")})),
        "missing field": (400, dict(files={"photo": ("x.png", photo, "image/png")})),
        "text field": (400, dict(data={"image": "a string"}, files={"other": ("x.txt", b"1", "text/plain")})),
        "no image type": (415, dict(content=photo, headers={"content-type": "text/plain"})),
        "too many bytes": (413, dict(files={"image": ("big.png", b"\x89PNG" + b"\0" * (2 * 1024 * 1024),
                                                      "image/png")})),
        "bomb": (413, dict(content=bomb_png(100_000, 100_000), headers={"content-type": "image/png"})),
        "too many pixels": (413, dict(content=bomb_png(10_000, 10_000), headers={"content-type": "image/png"})),
        "malformed multipart": (400, dict(content=b"--xyz\r\nnonsense", headers={
            "content-type": "multipart/form-data; boundary=xyz"})),
    }


@pytest.mark.parametrize("case", list(bad_requests()))
def test_every_bad_request_gets_its_4xx_as_json_and_the_server_answers_after(case, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))   # where a spooled upload would land
    status, request = bad_requests()[case]
    app = server.create_app(stand_ins(), max_bytes=1024 * 1024)
    with TestClient(app) as client:
        response = client.post("/predict", **request)
        assert response.status_code == status, response.text
        assert response.json()["status"] == status and response.json()["error"]
        good = client.post("/predict", files={"image": ("face.png", png(face_photo()[0]), "image/png")})
        assert good.status_code == 200 and len(good.json()["faces"]) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_wrong_method_or_path_is_a_json_4xx(client):
    assert client.get("/predict").status_code == 405
    assert client.get("/predict").json()["error"] == "Method Not Allowed"
    assert client.post("/health").status_code == 405
    assert client.get("/nowhere").status_code == 404


def test_a_big_upload_within_the_limit_stays_in_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    noisy = np.random.default_rng(0).integers(0, 256, (1200, 1600, 3), dtype=np.uint8)   # ~5.8 MB as PNG
    data = png(noisy)
    assert len(data) > 2 * 1024 * 1024
    with TestClient(server.create_app(stand_ins())) as client:
        assert client.post("/predict", files={"image": ("noise.png", data, "image/png")}).status_code == 200
    assert list(tmp_path.iterdir()) == []


def test_a_request_given_up_while_it_waited_is_skipped_and_the_model_thread_goes_on():
    release = threading.Event()

    class Waiting:
        def predict(self, images, batch_size, verbose=0):
            release.wait(10)
            return np.zeros((len(images), 3), np.float32)

    batcher = server.Batcher({"expressions": faces.Predictor("expressions", "ex", 48, [Waiting()], "none",
                                                             classes=("a", "b", "c"))})
    gray = np.zeros((100, 100), np.uint8)
    face = lambda: [[{"box": [10, 10, 50, 50], "crop": [5, 5, 60]}]]  # noqa: E731
    first = batcher.submit([gray], face())
    time.sleep(0.2)                       # the model thread is inside the first batch now
    given_up = batcher.submit([gray], face())
    assert given_up.cancel()              # its client went away before its turn
    third = batcher.submit([gray], face())
    release.set()
    first.result(10)
    third.result(10)
    batcher.close()
    assert given_up.cancelled() and batcher.batches == 2


# --- a real server on loopback ----------------------------------------------------------------------

class Running:
    """`app` served by uvicorn in a thread on a free loopback port, for the `with` block."""

    def __init__(self, app):
        import uvicorn  # the tests that need a real socket

        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                return self
            time.sleep(0.05)
        raise RuntimeError("the server did not start")

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)
        self.socket.close()


def post(port, body, content_type="image/png"):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", "/predict", body=body, headers={"content-type": content_type})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_a_port_in_use_is_one_line_naming_it():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PipelineError, match=rf"cannot listen on 127.0.0.1:{port}: Address already in use"):
            server.listening_socket("127.0.0.1", port)


def test_32_concurrent_clients_all_get_answers_batched_together():
    photo = png(face_photo()[0])
    app = server.create_app(stand_ins())
    with Running(app) as running:
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(lambda _: post(running.port, photo), range(96)))
    assert [status for status, _ in answers] == [200] * 96
    assert all(len(answer["faces"]) == 1 for _, answer in answers)


@pytest.mark.slow
def test_the_server_answers_a_composed_photo_as_predict_image_does(trained_project, tmp_path):
    photo, true_points = face_photo()
    two = np.concatenate([photo, face_photo(seed=1)[0]], axis=1)   # 800x300, two faces
    cv2.imwrite(str(tmp_path / "two.png"), two)
    result = CliRunner().invoke(cli, ["--root", str(trained_project), "predict-image", str(tmp_path / "two.png"),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    expected = json.loads((tmp_path / "out" / "two.json").read_text())

    runs = {c.task: RunDir(trained_project / "data" / "runs" / c.slug /
                           (trained_project / "data" / "runs" / c.slug / "latest").read_text().strip())
            for c in (KEYPOINTS, EXPRESSIONS)}
    predictors = {task: faces.load_predictor(run) for task, run in runs.items()}
    app = server.create_app(predictors, {task: server.run_summary(run) for task, run in runs.items()})
    with TestClient(app) as client:
        answer = client.post("/predict", files={"image": ("two.png", (tmp_path / "two.png").read_bytes(),
                                                          "image/png")}).json()
        health = client.get("/health").json()
    assert len(answer["faces"]) == 2
    assert {**answer, "image": expected["image"]} == expected
    left = answer["faces"][0]
    x, y, side = left["crop"]
    assert abs(x + side / 2 - (FACE_AT[0] + FACE_SIDE / 2)) < 0.1 * FACE_SIDE
    for px, py in left["keypoints"].values():   # a one-epoch model, but its points in the photo's pixels
        assert x <= px <= x + side and y <= py <= y + side
    assert health["runs"]["keypoints"]["model"] == "kaggle_cnn"
    assert health["runs"]["expressions"]["validation_score"] == runs["expressions"].score()
