"""python -m pipeline.bench serve: predict-video against the `fer` package, and the server under load.

    python -m pipeline.bench serve --root . --fer-path /tmp/fer-pkg
        (after `run.py all`; fer installed apart: pip install --target /tmp/fer-pkg fer opencv-contrib-python)

1. video: the same clip (--video, or a generated 640x480 one of a drawn face moving, --frames long)
   through predict-video's own code (video.run: detection, batched prediction of both runs, the
   annotated .mp4 and the CSV) and through fer's Video.analyze with FER()'s defaults (its Haar
   detector, its expression model), in a process of its own with PYTHONPATH=--fer-path, writing its
   annotated video but no per-frame images. Each tool is timed after its models are loaded; faces/s
   counts the faces each found. Both run on the same CPUs (--cpus, else all this process may use);
   with --repeats N they take turns N times and the medians are printed.
2. server: `run.py serve` in a process of its own on loopback, answering a JPEG of the clip's first
   frame (multipart, one face): requests/s and p50/p99 latency with 1, 8 and 32 concurrent clients
   (--per-level requests each), failures counted; its resident memory (VmRSS) after a warm-up and
   after --requests requests in all.

Prints key=value lines: faces_per_s_predict_video=, faces_per_s_fer=, speedup_vs_fer=, and for each
level rps_cN=, p50_ms_cN=, p99_ms_cN=, failed_cN=; rss_before_mb=, rss_after_mb=, rss_growth_mb=.
"""
import concurrent.futures
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import click
import numpy as np

from pipeline.bench import cli

LEVELS = (1, 8, 32)
ROOT = Path(__file__).resolve().parents[2]

FER_SCRIPT = r"""
import json, sys, time
from fer.fer import FER
from fer.classes import Video
detector = FER()
found = []
detect = detector.detect_emotions
def counting(*args, **kwargs):
    faces = detect(*args, **kwargs)
    found.append(len(faces))
    return faces
detector.detect_emotions = counting
clip = Video(sys.argv[1], outdir=sys.argv[2])
detector.detect_emotions(clip.cap.read()[1]); found.clear()   # warm up: the model's first call
started = time.perf_counter()
clip.analyze(detector, display=False, save_frames=False, save_video=True, annotate_frames=True, zip_images=False)
seconds = time.perf_counter() - started
import fer
print("FER_RESULT " + json.dumps({"seconds": seconds, "faces": sum(found), "frames": len(found),
                                  "version": fer.__version__}))
"""


def generated_clip(path, frames, fps=30.0):
    """A 640x480 .mp4: a built-in sample face, 220 px large, moving 2 px a frame over a smooth background."""
    import cv2  # this benchmark's own: `bench --help` loads none of them

    from pipeline.core.competitions import KEYPOINT_NAMES  # this benchmark's own (with the sample)
    from pipeline.data import sample  # this benchmark's own

    rng = np.random.default_rng(0)
    pose = {"centre": np.float32([[48, 48]]), "scale": np.float32([1.0]), "angle": np.float32([0.0])}
    keypoints = 48 + np.float32([sample.NEUTRAL[name] for name in KEYPOINT_NAMES]).reshape(1, 30)
    face = cv2.resize(sample.render(keypoints, sample.CLASS_MEANS[[3]], pose, rng)[0], (220, 220),
                      interpolation=cv2.INTER_CUBIC)
    face = np.clip(face[..., None] * [0.75, 0.85, 1.0], 0, 255).astype(np.uint8)
    background = cv2.GaussianBlur(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), (0, 0), 6)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 480))
    for i in range(frames):
        frame = background.copy()
        x = 60 + (2 * i) % 300
        frame[130:350, x:x + 220] = face
        writer.write(frame)
    writer.release()
    return path


def first_frame_jpeg(clip):
    import cv2  # this benchmark's own: `bench --help` loads none of them

    capture = cv2.VideoCapture(str(clip))
    ok, frame = capture.read()
    capture.release()
    if not ok:
        raise click.ClickException(f"{clip}: no frame could be read")
    return cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def load_predictors(root, runs):
    """task -> faces.Predictor of the chosen runs, each warmed up (its input shapes traced)."""
    from pipeline.core.competitions import tasks_for  # this benchmark's own: `bench --help` loads none of them
    from pipeline.serving import faces  # this benchmark's own
    from pipeline.stages import Pipeline  # this benchmark's own

    chain = Pipeline(root, echo=lambda _: None, progress=False)
    predictors = {c.task: faces.load_predictor(chain.run_dir(c, runs[c.task])) for c in tasks_for("both")}
    for predictor in predictors.values():
        predictor.warm_up()
    return predictors


def time_predict_video(predictors, clip, out):
    """predict-video's counts and seconds on `clip` (video.predict_video: what run.py predict-video runs)."""
    from pipeline.serving import video  # this benchmark's own: `bench --help` loads none of them

    return video.predict_video(Path(clip), out, "predict-video", predictors)


def time_fer(clip, out, fer_path):
    """fer's Video.analyze on `clip`: {"seconds", "faces", "frames", "version"}."""
    env = {**os.environ, "PYTHONPATH": str(fer_path), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("KERAS_BACKEND", None)
    done = subprocess.run([sys.executable, "-c", FER_SCRIPT, str(clip), str(out)], cwd=out, env=env,
                          capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("FER_RESULT ")]
    if done.returncode or not lines:
        raise click.ClickException(f"fer failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return json.loads(lines[-1].split(" ", 1)[1])


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def multipart(jpeg):
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"frame.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + jpeg + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def load(port, body, content_type, clients, requests):
    """`requests` POST /predict spread over `clients` threads, each on its own keep-alive connection:
    (wall seconds, latencies in s of the answered ones, failures)."""
    per_client = [requests // clients + (i < requests % clients) for i in range(clients)]

    def client(count):
        latencies, failures = [], 0
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for _ in range(count):
            started = time.perf_counter()
            try:
                connection.request("POST", "/predict", body=body, headers={"content-type": content_type})
                response = connection.getresponse()
                answer = response.read()
                if response.status != 200 or not json.loads(answer)["faces"]:
                    failures += 1
                    continue
            except (OSError, http.client.HTTPException, ValueError):
                failures += 1
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                continue
            latencies.append(time.perf_counter() - started)
        connection.close()
        return latencies, failures

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(client, per_client))
    wall = time.perf_counter() - started
    return wall, [t for latencies, _ in results for t in latencies], sum(f for _, f in results)


def rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise click.ClickException(f"no VmRSS for process {pid}")


def start_server(root, port, runs, log):
    """`run.py serve` on loopback, once it answers /health; its output goes to the file `log`."""
    command = [sys.executable, str(ROOT / "run.py"), "--root", str(root), "--quiet", "serve", "--port", str(port),
               "--keypoints-run", runs["keypoints"], "--expressions-run", runs["expressions"]]
    with open(log, "w") as output:   # a file, not a pipe: a pipe nobody reads fills up and stalls the server
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise click.ClickException(f"run.py serve exited: {Path(log).read_text()[-2000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise click.ClickException("run.py serve did not answer /health within 300 s")


def percentile(values, q):
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


@cli.command("serve")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
              help="Project folder with trained runs (after `run.py all`).")
@click.option("--keypoints-run", default="latest", show_default=True)
@click.option("--expressions-run", default="latest", show_default=True)
@click.option("--video", "clip", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The clip both tools read.  [default: a generated 640x480 clip of one face]")
@click.option("--frames", default=300, show_default=True,
              help="Frames of the generated clip (300: 10 s at 30 frames/s; predict-video's start-up, the first "
                   "batch of frames found before the models start, weighs on much shorter clips).")
@click.option("--fer-path", type=click.Path(path_type=Path), default=Path("/tmp/fer-pkg"), show_default=True,
              help="Folder where fer and opencv-contrib-python are installed (pip install --target).")
@click.option("--no-fer", is_flag=True, help="Skip fer (no comparison).")
@click.option("--per-level", default=200, show_default=True, help="Requests at each level of concurrent clients.")
@click.option("--requests", "total", default=1000, show_default=True,
              help="Requests in all between the two memory readings (the levels' ones count).")
@click.option("--levels", default=",".join(map(str, LEVELS)), show_default=True, help="Concurrent clients.")
@click.option("--cpus", default=None, help="CPUs to run on, e.g. 0,1 (both tools and the server).  [default: all]")
@click.option("--repeats", default=1, show_default=True,
              help="Video timings of each tool, taken in turn; the medians are printed.")
def serve_command(root, keypoints_run, expressions_run, clip, frames, fer_path, no_fer, per_level, total, levels,
                  cpus, repeats):
    """predict-video's faces/s against fer's, and the server's requests/s, latency and memory."""
    if cpus:
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})   # the children inherit it
    root = root.resolve()
    runs = {"keypoints": keypoints_run, "expressions": expressions_run}
    click.echo(f"cpus={len(os.sched_getaffinity(0))} ({','.join(map(str, sorted(os.sched_getaffinity(0))))})")
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as folder:
        folder = Path(folder)
        clip = clip or generated_clip(folder / "clip.mp4", frames)
        predictors = load_predictors(root, runs)
        ours_rates, theirs_rates = [], []
        for repeat in range(repeats):   # taken in turn: a slower spell of the machine hits both
            ours = time_predict_video(predictors, clip, folder)
            ours_rates.append(ours["faces"] / ours["seconds"])
            click.echo(f"predict_video: {ours['faces']} faces in {ours['frames']} frames of {clip.name}, "
                       f"{ours['seconds']:.2f} s, {ours_rates[-1]:.1f} faces/s")
            if not no_fer:
                theirs = time_fer(clip, folder, fer_path)
                theirs_rates.append(theirs["faces"] / theirs["seconds"])
                click.echo(f"fer {theirs['version']}: {theirs['faces']} faces in {theirs['frames']} frames, "
                           f"{theirs['seconds']:.2f} s, {theirs_rates[-1]:.1f} faces/s")
        click.echo(f"faces_per_s_predict_video={np.median(ours_rates):.1f}")
        if theirs_rates:
            click.echo(f"faces_per_s_fer={np.median(theirs_rates):.1f}")
            click.echo(f"speedup_vs_fer={np.median(ours_rates) / np.median(theirs_rates):.2f}")
        del predictors   # the server below is a process of its own

        body, content_type = multipart(first_frame_jpeg(clip))
        port = free_port()
        server = start_server(root, port, runs, folder / "serve.log")
        try:
            load(port, body, content_type, 4, 20)   # warm-up: the first calls trace the models
            before = rss_mb(server.pid)
            sent = 0
            for clients in (int(c) for c in levels.split(",")):
                wall, latencies, failed = load(port, body, content_type, clients, per_level)
                sent += per_level
                click.echo(f"rps_c{clients}={len(latencies) / wall:.1f} p50_ms_c{clients}={percentile(latencies, 50):.1f} "
                           f"p99_ms_c{clients}={percentile(latencies, 99):.1f} failed_c{clients}={failed}")
            if total > sent:
                _, _, failed = load(port, body, content_type, 8, total - sent)
                sent = total
            after = rss_mb(server.pid)
            click.echo(f"requests={sent} rss_before_mb={before:.1f} rss_after_mb={after:.1f} "
                       f"rss_growth_mb={after - before:.1f}")
        finally:
            server.terminate()
            server.wait(30)
