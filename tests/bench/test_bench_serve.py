"""python -m pipeline.bench serve runs and prints its figures on a tiny setting (it is timed only when run by hand)."""
import re

import pytest
from click.testing import CliRunner

pytest.importorskip("fastapi")

from pipeline.bench import cli, serve  # noqa: E402,F401  serve registers the command

pytestmark = pytest.mark.slow


def test_serve_benchmark_prints_video_speed_and_the_servers_latency_and_memory(trained_project):
    result = CliRunner().invoke(cli, ["serve", "--root", str(trained_project), "--frames", "10", "--no-fer",
                                      "--per-level", "8", "--requests", "40", "--levels", "1,4"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert float(re.search(r"faces_per_s_predict_video=([0-9.]+)", result.output).group(1)) > 0
    for clients in (1, 4):
        line = re.search(rf"rps_c{clients}=([0-9.]+) p50_ms_c{clients}=([0-9.]+) p99_ms_c{clients}=([0-9.]+) "
                         rf"failed_c{clients}=(\d+)", result.output)
        assert line and float(line.group(1)) > 0 and line.group(4) == "0", result.output
    assert re.search(r"requests=40 rss_before_mb=[0-9.]+ rss_after_mb=[0-9.]+ rss_growth_mb=-?[0-9.]+", result.output)


def test_the_generated_clip_has_its_frames_and_a_face_in_each(tmp_path):
    import cv2

    from pipeline.serving import faces

    serve.generated_clip(tmp_path / "clip.mp4", 5)
    capture = cv2.VideoCapture(str(tmp_path / "clip.mp4"))
    frames = []
    while (read := capture.read())[0]:
        frames.append(read[1])
    assert len(frames) == 5 and frames[0].shape == (480, 640, 3)
    assert all(len(faces.detect_faces(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))) == 1 for frame in frames)
