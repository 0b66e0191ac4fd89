"""report: a self-contained HTML page per run whose numbers are the run's own."""
import html
import json
import re
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from pipeline.core.competitions import EXPRESSIONS, KEYPOINTS
from pipeline.cli import cli

pytest.importorskip("keras")
pytestmark = pytest.mark.slow

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def reported(trained_project, tmp_path_factory):
    """The tiny trained project, copied, after `run.py report` (both tasks, the default)."""
    root = tmp_path_factory.mktemp("report") / "project"
    shutil.copytree(trained_project, root)
    result = CliRunner().invoke(cli, ["--root", str(root), "report"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return root, result.output


def page_of(root, competition):
    runs = root / "data" / "runs" / competition.slug
    run = (runs / "latest").read_text().strip()
    return root / "reports" / competition.slug / run / "index.html", runs / run


def score_rows(page):
    """{what: value} of the page's scores table."""
    rows = re.findall(r'<tr class="[^"]*"><td>([^<]*)</td><td class="n">([^<]*)</td>', page)
    return {html.unescape(what): value for what, value in rows}


@pytest.mark.parametrize("competition", [KEYPOINTS, EXPRESSIONS], ids=lambda c: c.task)
def test_every_image_of_the_page_exists_and_is_a_png(reported, competition):
    root, output = reported
    page_file, _ = page_of(root, competition)
    page = page_file.read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) >= 5
    for name in images:
        assert "/" not in name and "http" not in name          # beside the page: readable offline
        assert (page_file.parent / name).read_bytes()[:8] == PNG_SIGNATURE
    import matplotlib.image

    assert matplotlib.image.imread(page_file.parent / images[0]).shape[0] > 100
    assert f"{competition.task:<11} report     ran" in output


def test_keypoint_scores_are_the_runs_metrics(reported):
    root, _ = reported
    page_file, run_dir = page_of(root, KEYPOINTS)
    page = page_file.read_text()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    rows = score_rows(page)
    assert rows["validation RMSE (px), TTA none"] == f"{metrics['val_rmse']:.4f}"
    assert rows["validation RMSE (px), TTA flip"] == f"{metrics['val_rmse_flip']:.4f}"
    assert rows["predicting the training mean (px)"] == f"{metrics['baseline_rmse']:.4f}"
    assert rows["reference keypoints CNN, Kaggle leaderboard"] == "3.41"
    for heading in ("Learning curves", "The data", "Validation faces", "worst validation faces", "RMSE per keypoint"):
        assert heading in page


def test_expression_scores_are_the_runs_metrics_with_a_per_class_table(reported):
    root, _ = reported
    page_file, run_dir = page_of(root, EXPRESSIONS)
    page = page_file.read_text()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    test = json.loads((run_dir / "test_metrics.json").read_text())
    rows = score_rows(page)
    assert rows["validation accuracy, TTA none"] == f"{metrics['val_accuracy']:.4f}"
    assert rows["predicting the majority class"] == f"{metrics['majority_accuracy']:.4f}"
    assert rows[f"PublicTest accuracy, TTA {test['tta']}"] == f"{test['public_test_accuracy']:.4f}"
    assert rows[f"PrivateTest accuracy, TTA {test['tta']}"] == f"{test['private_test_accuracy']:.4f}"
    assert rows["2013 winner (Tang), PrivateTest"] == "0.712"
    for heading in ("Confusion matrix", "Per class", "most confident mistakes"):
        assert heading in page
    classes = test["classes"]
    assert all(f"<td>{c}</td>" in page for c in classes)          # precision/recall/F1 row per class


def test_the_page_renders_in_a_headless_browser(reported, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium installed (Debian: apt-get install chromium)")
    root, _ = reported
    page_file, _ = page_of(root, EXPRESSIONS)
    shot = tmp_path / "page.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1200,2400", page_file.as_uri()], capture_output=True, timeout=120)
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.std() > 0.05     # not a blank page: text and plots drawn


def test_ferplus_scores_show_both_ways_of_choosing_the_test_faces():
    from pipeline.reporting.report import metrics_table

    test = {"public_test_accuracy": 0.86, "private_test_accuracy": 0.85,
            "public_test_accuracy_plurality": 0.83, "private_test_accuracy_plurality": 0.81, "tta": "flip"}
    rows = {what: value for what, value, _ in metrics_table("expressions", "ferplus", {"majority_accuracy": 0.4},
                                                                 test, "flip")}
    assert rows["PrivateTest accuracy, TTA flip"] == "0.8500"
    assert rows["PrivateTest accuracy, TTA flip, every face whose most voted column is an emotion"] == "0.8100"
    assert rows["VGG13 (Barsoum et al. 2016), FERPlus test"] == "0.85"
