"""export: a run as one serving model (pixels or probabilities out), checked in a fresh process."""
import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.core.competitions import EXPRESSIONS, KEYPOINT_COLUMNS, KEYPOINTS
from pipeline.cli import cli

keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")

from pipeline.core import layout  # noqa: E402
from pipeline.data import scale  # noqa: E402
from pipeline.inference import export, tta  # noqa: E402
from pipeline.inference.rundir import RunDir  # noqa: E402
from pipeline.models import float32_copy  # noqa: E402

pytestmark = pytest.mark.slow

LOAD_IN_FRESH_PROCESS = """
import json, sys
import numpy as np
import tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
out = serve(image=tf.constant(np.load(sys.argv[2])))
np.save(sys.argv[3], next(iter(out.values())).numpy())
print(json.dumps({"outputs": list(out), "inputs": [s.name for s in serve.structured_input_signature[1].values()]}))
"""


def invoke(root, *args):
    result = CliRunner().invoke(cli, ["--root", str(root), *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


@pytest.fixture
def project(trained_project, tmp_path):
    """The trained tiny project, copied: exporting writes into it."""
    import shutil

    shutil.copytree(trained_project, tmp_path / "project")
    return tmp_path / "project"


def run_dir(root, competition):
    runs = root / "data" / "runs" / competition.slug
    return runs / (runs / "latest").read_text().strip()


def saved_model_outputs(folder, images, tmp_path):
    np.save(tmp_path / "images.npy", images)
    done = subprocess.run([sys.executable, "-c", LOAD_IN_FRESH_PROCESS, str(folder), str(tmp_path / "images.npy"),
                           str(tmp_path / "out.npy")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return np.load(tmp_path / "out.npy"), json.loads(done.stdout.strip().splitlines()[-1])


def float32_models(trained):
    """The run's models as the export holds them: computing in float32 whatever precision trained them."""
    return [float32_copy(model) for model in RunDir(trained).load_models()]


def exported(root, competition, *formats):
    """`run.py export` of the latest run: (its run folder, its export folder)."""
    invoke(root, "export", "--task", competition.task, *[option for f in formats for option in ("--format", f)])
    trained = run_dir(root, competition)
    return trained, root / "exports" / competition.slug / trained.name


def test_keypoint_export_gives_pixels_in_a_fresh_process(project, tmp_path):
    trained, folder = exported(project, KEYPOINTS)
    images = np.random.default_rng(1).random((5, 96, 96, 1), dtype=np.float32)

    served, signature = saved_model_outputs(folder / "saved_model", images, tmp_path)
    assert signature == {"outputs": ["keypoints"], "inputs": ["image"]}
    scaling = scale.KeypointScaling.from_json(json.loads((trained / layout.PREDICTOR).read_text())["scaling"])
    in_pixels = tta.predict_keypoints(float32_models(trained), images, scaling, batch_size=5)
    np.testing.assert_allclose(served, in_pixels, rtol=1e-5, atol=1e-4)
    reloaded = keras.saving.load_model(folder / "model.keras")
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), served, rtol=1e-5, atol=1e-5)
    metadata = json.loads((folder / export.METADATA).read_text())
    assert metadata["output"]["units"] == "pixels" and metadata["output"]["columns"] == list(KEYPOINT_COLUMNS)
    assert (folder / "saved_model" / "assets.extra" / export.METADATA).exists()


def test_expression_export_gives_probabilities_and_names_the_classes(project, tmp_path):
    trained, folder = exported(project, EXPRESSIONS)
    images = np.random.default_rng(2).random((3, 48, 48, 1), dtype=np.float32)

    served, signature = saved_model_outputs(folder / "saved_model", images, tmp_path)
    assert signature["outputs"] == ["probabilities"]
    expected = tta.predict_probabilities(float32_models(trained), images, batch_size=3)
    np.testing.assert_allclose(served, expected, atol=1e-5)
    np.testing.assert_allclose(served.sum(axis=1), 1, atol=1e-5)
    classes = json.loads((trained / layout.PREDICTOR).read_text())["classes"]
    assert json.loads((folder / export.METADATA).read_text())["output"]["classes"] == classes


def test_onnx_export_matches_the_keras_model(project):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")
    trained, folder = exported(project, EXPRESSIONS, "onnx")
    images = np.random.default_rng(3).random((4, 48, 48, 1), dtype=np.float32)

    session = onnxruntime.InferenceSession(str(folder / "model.onnx"))
    (onnx_out,) = session.run(None, {session.get_inputs()[0].name: images})
    expected = tta.predict_probabilities(float32_models(trained), images, batch_size=4)
    np.testing.assert_allclose(onnx_out, expected, atol=1e-5)


def test_an_export_that_disagrees_with_the_model_is_refused():
    with pytest.raises(export.PipelineError, match="differs from the Keras model"):
        export._check("SavedModel", np.array([[1.0, 2.0]]), np.array([[1.0, 2.001]]))
    assert export._check("SavedModel", np.array([[96.0]]), np.array([[96.0 + 5e-4]])) == pytest.approx(5e-4)


def test_onnx_without_its_converter_says_what_to_install(project, monkeypatch):
    real = export.importlib.util.find_spec
    monkeypatch.setattr(export.importlib.util, "find_spec", lambda name: None if name == "tf2onnx" else real(name))
    result = CliRunner().invoke(cli, ["--root", str(project), "export", "--task", "expressions", "--format", "onnx"])
    assert result.exit_code != 0
    assert "needs tf2onnx" in result.output and "pip install" in result.output


def test_an_ensemble_exports_as_one_model_averaging_its_members(project):
    invoke(project, "train", "--task", "expressions", "--model", "compact_vgg", "--epochs", "1", "--batch-size", "8",
           "--ensemble", "2")
    ensemble_dir, folder = exported(project, EXPRESSIONS, "keras")
    images = np.random.default_rng(4).random((3, 48, 48, 1), dtype=np.float32)

    averaged = keras.saving.load_model(folder / "model.keras")
    members = float32_models(ensemble_dir)
    assert len(members) == 2
    expected = np.mean([m.predict(images, verbose=0) for m in members], axis=0)
    np.testing.assert_allclose(averaged.predict(images, verbose=0), expected, atol=1e-6)
