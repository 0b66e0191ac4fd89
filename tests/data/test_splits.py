"""Which rows train and which validate: the K-fold assignment of cross-validation."""
import numpy as np
import pytest

from pipeline.data.splits import fold_of_rows, fold_split, fold_strata, load_training_data


def expressions_arrays(n=203, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.choice(7, n, p=[0.14, 0.02, 0.14, 0.25, 0.17, 0.11, 0.17])
    return {"train_x": rng.integers(0, 256, (n, 48, 48, 1), dtype=np.uint8), "train_labels": labels}


def keypoints_arrays(n=157, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.uniform(-1, 1, (n, 30)).astype(np.float32)
    y[rng.random(n) < 0.7, 8:] = np.nan   # most rows: the 4-keypoint scheme
    return {"train_x": rng.integers(0, 256, (n, 96, 96, 1), dtype=np.uint8), "train_y": y}


@pytest.mark.parametrize("task, data", [("expressions", expressions_arrays()), ("keypoints", keypoints_arrays())])
@pytest.mark.parametrize("folds", [2, 5])
def test_folds_are_disjoint_cover_every_row_and_are_stratified(task, data, folds):
    fold = fold_of_rows(task, data, folds, seed=0)
    n = len(data["train_x"])
    assert fold.shape == (n,) and set(fold) == set(range(folds))   # every row in exactly one fold
    held_out = [fold_split(fold, k)[1] for k in range(folds)]
    assert sorted(np.concatenate(held_out)) == list(range(n))
    for k in range(folds):
        train, val = fold_split(fold, k)
        assert not set(train) & set(val) and len(train) + len(val) == n
    # each stratum spread over the folds as evenly as the counts allow
    strata = fold_strata(task, data)
    for stratum in np.unique(strata):
        per_fold = np.bincount(fold[strata == stratum], minlength=folds)
        assert per_fold.max() - per_fold.min() <= 1, (stratum, per_fold)


def test_keypoint_strata_are_the_annotation_schemes():
    data = keypoints_arrays()
    complete = ~np.isnan(data["train_y"]).any(axis=1)
    np.testing.assert_array_equal(fold_strata("keypoints", data), complete.astype(int))


def test_the_same_seed_gives_the_same_folds_and_another_seed_others():
    data = expressions_arrays()
    np.testing.assert_array_equal(fold_of_rows("expressions", data, 5, seed=3), fold_of_rows("expressions", data, 5, seed=3))
    assert (fold_of_rows("expressions", data, 5, seed=3) != fold_of_rows("expressions", data, 5, seed=4)).any()


def test_a_fold_trains_on_the_other_folds_rows_and_validates_on_its_own(tmp_path):
    from pipeline.core.fileio import save_arrays, write_json

    data = expressions_arrays(n=60)
    save_arrays(tmp_path / "arrays.npz", **data)
    write_json(tmp_path / "meta.json", {"classes": [str(c) for c in range(7)], "summary": {"labels": "fer2013"}})
    params = {"folds": 3, "fold": 1, "seed": 0, "ferplus_target": "dist"}
    loaded = load_training_data("expressions", tmp_path, params)
    fold = fold_of_rows("expressions", data, 3, seed=0)
    np.testing.assert_array_equal(loaded.val_x, data["train_x"][fold == 1])
    np.testing.assert_array_equal(loaded.train_x, data["train_x"][fold != 1])
    np.testing.assert_array_equal(loaded.val_labels, data["train_labels"][fold == 1])
