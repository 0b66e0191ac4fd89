"""predict: self-contained run folders, full batches, flip TTA."""
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from pipeline.data import clean, sample
from pipeline.core.competitions import EXPRESSIONS, KEYPOINTS
from pipeline.cli import cli

keras = pytest.importorskip("keras")

from pipeline.inference import predict  # noqa: E402
from pipeline.inference import tta


def invoke(root, *args):
    result = CliRunner().invoke(cli, ["--root", str(root), *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


@pytest.mark.slow
def test_a_run_predicts_with_its_own_scaling_after_a_rescale(project):
    quick = ["--task", "keypoints", "--epochs", "1", "--batch-size", "8", "--augment", "none"]
    invoke(project, "all", *quick)
    runs = project / "data" / "runs" / KEYPOINTS.slug
    first = (runs / "latest").read_text().strip()
    predictions = runs / first / "predictions.npz"
    before = np.load(predictions)["keypoints"]
    scaling = json.loads((runs / first / "predictor.json").read_text())["scaling"]
    assert scaling["low"] == [0.0] * 30 and scaling["high"] == [96.0] * 30

    invoke(project, "all", *quick, "--keypoint-range", "data")   # re-scales, trains a second run
    assert (runs / "latest").read_text().strip() != first
    invoke(project, "predict", "--task", "keypoints", "--run", first, "--force")
    np.testing.assert_array_equal(np.load(predictions)["keypoints"], before)


@pytest.mark.slow
def test_a_fer2013_run_refuses_to_score_against_ferplus_labels(tmp_path):
    raw = tmp_path / "data" / "raw" / EXPRESSIONS.slug
    raw.mkdir(parents=True)
    sample.write_sample(EXPRESSIONS, raw, seed=3, sizes=sample.SampleSizes(expressions=120))
    invoke(tmp_path, "all", "--task", "expressions", "--epochs", "1", "--model", "compact_vgg")
    fer2013_run = (tmp_path / "data" / "runs" / EXPRESSIONS.slug / "latest").read_text().strip()
    invoke(tmp_path, "clean", "--task", "expressions", "--labels", "ferplus")
    invoke(tmp_path, "scale", "--task", "expressions")

    result = CliRunner().invoke(cli, ["--root", str(tmp_path), "predict", "--task", "expressions",
                                      "--run", fer2013_run])
    assert result.exit_code != 0
    assert f"run {fer2013_run} was trained on fer2013 labels" in result.output
    assert "--labels fer2013" in result.output


@pytest.mark.slow
def test_ferplus_runs_are_scored_by_ferplus_rule_and_by_plurality(tmp_path):
    raw = tmp_path / "data" / "raw" / EXPRESSIONS.slug
    raw.mkdir(parents=True)
    sample.write_sample(EXPRESSIONS, raw, seed=3, sizes=sample.SampleSizes(expressions=200))
    invoke(tmp_path, "all", "--task", "expressions", "--labels", "ferplus", "--epochs", "1", "--model", "compact_vgg")
    runs = tmp_path / "data" / "runs" / EXPRESSIONS.slug
    run_dir = runs / (runs / "latest").read_text().strip()
    scored = json.loads((run_dir / "test_metrics.json").read_text())

    ferplus = pd.read_csv(raw / "fer2013new.csv")
    votes, usage = ferplus.iloc[:, 2:].to_numpy(), ferplus.Usage.to_numpy()
    predicted = np.load(run_dir / "predictions.npz")["labels"]
    test = usage != "Training"
    for key, labels in (("private_test_accuracy", clean.ferplus_test_labels(votes)[test]),
                        ("private_test_accuracy_plurality", clean.ferplus_majority(votes)[0][test])):
        rows = (usage[test] == "PrivateTest") & (labels >= 0)
        assert scored[key] == pytest.approx(np.mean(predicted[rows] == labels[rows]))
    assert {"public_test_accuracy", "public_test_accuracy_plurality"} <= scored.keys()


def test_predict_batches_matches_one_big_batch_for_any_batch_size():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 1))
    x = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(x)))
    images = np.random.default_rng(0).random((23, 6, 6, 1), dtype=np.float32)
    expected = model.predict(images, batch_size=23, verbose=0)
    for batch_size in (1, 5, 8, 23, 64):
        np.testing.assert_allclose(tta.predict_batches(model, images, batch_size), expected,
                                   rtol=1e-5, atol=1e-6, err_msg=str(batch_size))


class Mirror:
    """A 'model' that answers each image's mean column intensity profile: flips show in its output."""

    def predict(self, images, batch_size, verbose=0):
        assert len(images) % batch_size == 0   # full batches only
        return images.mean(axis=(1, 3))[:, :3]


def test_flip_tta_averages_with_the_mirrored_images():
    images = np.random.default_rng(1).random((5, 4, 4, 1), dtype=np.float32)
    plain = tta.predict_probabilities([Mirror()], images, batch_size=2)
    both = tta.predict_probabilities([Mirror()], images, batch_size=2, tta="flip")
    mirrored = images[:, :, ::-1].mean(axis=(1, 3))[:, :3]
    np.testing.assert_allclose(both, (plain + mirrored) / 2, rtol=1e-6)


def test_test_accuracy_reports_each_usage_and_skips_unlabelled_rows():
    predicted = np.array([1, 1, 2, 0, 3])
    labels = np.array([1, 0, 2, -1, 3])
    usage = np.array([1, 1, 2, 2, 2])
    assert predict.test_accuracy(predicted, labels, usage) == {"public_test_accuracy": 0.5,
                                                               "private_test_accuracy": 1.0}


def faces(n, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48, 1), dtype=np.uint8)


def test_ferplus_test_metrics_score_each_label_set_apart():
    predicted = np.array([0, 1, 2, 3])
    data = {"test_usage": np.array([2, 2, 2, 2]), "test_labels": np.array([0, -1, -1, 0]),
            "test_plurality_labels": np.array([0, 1, 2, 0]), "test_x": faces(4, 0), "train_x": faces(3, 1)}
    metrics = predict.expression_test_metrics(predicted, data)
    assert metrics["private_test_accuracy"] == 0.5 and metrics["private_test_accuracy_plurality"] == 0.75
    del data["test_plurality_labels"]   # FER2013: one label set
    assert not any("plurality" in key for key in predict.expression_test_metrics(predicted, data))


def test_test_faces_copied_from_training_are_scored_apart_as_well():
    train = faces(6, 1)
    test = faces(6, 2)
    test[[1, 4]] = train[[5, 0]]          # two pixel copies, one per usage
    test[2, 0, 0, 0] = train[3, 0, 0, 0]  # one equal pixel is not a copy
    usage = np.array([1, 1, 1, 2, 2, 2])
    labels = np.array([0, 1, 2, 3, 4, 5])
    predicted = np.array([9, 1, 2, 9, 4, 5])   # the copies answered right, as if from memory
    data = {"test_usage": usage, "test_labels": labels, "test_x": test, "train_x": train}
    np.testing.assert_array_equal(predict.copied_in(test, train), [False, True, False, False, True, False])
    metrics = predict.expression_test_metrics(predicted, data)
    assert metrics["public_test_accuracy"] == pytest.approx(2 / 3)
    assert metrics["public_test_accuracy_unseen"] == 0.5 and metrics["public_test_unseen_rows"] == 2
    assert metrics["private_test_accuracy"] == pytest.approx(2 / 3)
    assert metrics["private_test_accuracy_unseen"] == 0.5 and metrics["private_test_unseen_rows"] == 2


def test_a_shifted_view_moves_the_content_and_repeats_the_border():
    images = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    moved = tta.view(images, False, 1, 0)[0, :, :, 0]
    np.testing.assert_array_equal(moved[:, 1:], images[0, :, :3, 0])
    np.testing.assert_array_equal(moved[:, 0], images[0, :, 0, 0])
    down = tta.view(images, True, 0, -1)[0, :, :, 0]   # mirrored, then moved up
    np.testing.assert_array_equal(down[:3], images[0, 1:, ::-1, 0])


class KeypointFinder:
    """A 'model' that finds the brightest pixel of each image and answers it as all 15 keypoints,
    in the 'image' scaling (px / 48 - 1)."""

    def predict(self, images, batch_size, verbose=0):
        n, height, width, _ = images.shape
        flat = images.reshape(n, -1).argmax(axis=1)
        ys, xs = np.divmod(flat, width)
        return np.tile(np.stack([xs / 48 - 1, ys / 48 - 1], 1), (1, 15)).astype(np.float32)


@pytest.mark.parametrize("level", ["none", "flip", "multi"])
def test_every_keypoint_view_is_mapped_back_to_the_original_image(level):
    from pipeline.data.mirror import flip_permutation
    from pipeline.data.scale import fit_keypoint_scaling

    images = np.zeros((3, 96, 96, 1), np.float32)
    spots = [(30, 40), (60, 20), (47, 70)]   # (x, y), away from the border
    for i, (x, y) in enumerate(spots):
        images[i, y, x] = 1.0
    scaling = fit_keypoint_scaling(np.zeros((1, 30)), "image")
    keypoints = tta.predict_keypoints([KeypointFinder()], images, scaling, batch_size=2, tta=level)
    # A mirrored view swaps left and right columns; every column holds the same spot here.
    assert sorted(flip_permutation()) == list(range(30))
    np.testing.assert_allclose(keypoints[:, 0::2], np.array(spots)[:, :1].repeat(15, 1), atol=1e-4)
    np.testing.assert_allclose(keypoints[:, 1::2], np.array(spots)[:, 1:].repeat(15, 1), atol=1e-4)


def test_uint8_images_predict_as_their_float_scaling():
    """The scale stage stores images as bytes; the model sees them divided by 255, TTA views included."""
    pixels = np.random.default_rng(2).integers(0, 256, (7, 4, 4, 1), dtype=np.uint8)
    unit = pixels.astype(np.float32) / 255
    for level in ("none", "multi"):
        np.testing.assert_array_equal(tta.predict_probabilities([Mirror()], pixels, 3, level),
                                      tta.predict_probabilities([Mirror()], unit, 3, level))
    assert tta.predict_batches(Mirror(), pixels, 3).max() <= 1
