"""Which rows train and which validate, read from the processed arrays.

Keypoints validate on a split of training.csv. Expressions validate on a stratified split of
Training, or on PublicTest (`validation="public-test"`), so that all of Training trains. With
`folds` K > 1 (cross-validation), fold k validates on the k-th of K stratified folds of the training
rows and trains on the others. PrivateTest is never read here: it is the final exam, scored by
predict and never used to choose anything.
"""
import warnings
from dataclasses import dataclass, replace

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

from pipeline.core.competitions import PARTIAL_COLUMNS, PUBLIC_TEST
from pipeline.core.errors import PipelineError
from pipeline.core.fileio import load_arrays, read_json
from pipeline.core.layout import ARRAYS, META, SCALING
from pipeline.core.recipes import COMMON, COMPLETE
from pipeline.data.scale import KeypointScaling, load_scaling

# The split does not follow the training seed: runs that differ only in their seed (an ensemble's
# members) validate on the same rows, so their scores compare and their average is judged on rows
# none of them saw.
SPLIT_SEED = 0


@dataclass
class TrainingData:
    """Images (n, h, w, 1) uint8 (float32 in [0, 1] works too); targets scaled keypoints (n, 30)
    with NaN, or class distributions (n, classes); labels (n,) majority class (expressions only)."""
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    train_labels: np.ndarray = None
    val_labels: np.ndarray = None
    scaling: KeypointScaling = None
    classes: tuple = None


def load_training_data(task, processed, params):
    """The training and validation rows of data/processed/<slug>/ for a run's `params`
    (val_fraction, validation, ferplus_target)."""
    data = load_arrays(processed / ARRAYS)
    x = data["train_x"]
    folds = params.get("folds", 1)
    if task == "keypoints":
        y = data["train_y"]
        if folds > 1:
            train_rows, val_rows = fold_split(fold_of_rows(task, data, folds, params["seed"]), params["fold"])
        else:
            train_rows, val_rows = split_indices(len(x), params["val_fraction"])
        return specialise(TrainingData(x[train_rows], y[train_rows], x[val_rows], y[val_rows],
                                       scaling=load_scaling(processed / SCALING)), params.get("specialist"))

    meta = read_json(processed / META)
    classes = tuple(meta["classes"])
    labels = data["train_labels"]
    soft = params["ferplus_target"] == "dist" and meta["summary"]["labels"] == "ferplus"
    one_hot = np.eye(len(classes), dtype=np.float32)
    y = data["train_distribution"] if soft else one_hot[labels]
    if folds > 1:
        train_rows, val_rows = fold_split(fold_of_rows(task, data, folds, params["seed"]), params["fold"])
        return TrainingData(x[train_rows], y[train_rows], x[val_rows], y[val_rows],
                            labels[train_rows], labels[val_rows], classes=classes)
    if params["validation"] == "public-test":
        public = (data["test_usage"] == PUBLIC_TEST) & (data["test_labels"] >= 0)
        if not public.any():
            raise PipelineError("--validation public-test: the test rows carry no PublicTest labels; "
                                "use --validation split")
        val_labels = data["test_labels"][public]
        val_y = data["test_distribution"][public] if soft else one_hot[val_labels]
        return TrainingData(x, y, data["test_x"][public], val_y, labels, val_labels, classes=classes)
    train_rows, val_rows = split_indices(len(x), params["val_fraction"], labels=labels)
    return TrainingData(x[train_rows], y[train_rows], x[val_rows], y[val_rows],
                        labels[train_rows], labels[val_rows], classes=classes)


def specialise(data, specialist):
    """A keypoint specialist's part of the training and validation rows (training/specialists.py):
    "complete" keeps the rows with all 30 targets; "common" keeps every row but only the targets of
    the 4 keypoints most rows carry (PARTIAL_KEYPOINTS), the others masked (NaN, which the loss and
    the validation RMSE skip). None: the rows as they are."""
    if specialist is None:
        return data
    if specialist == COMPLETE:
        train, val = (~np.isnan(y).any(axis=1) for y in (data.train_y, data.val_y))
        if not train.any() or not val.any():
            raise PipelineError("--specialists: the complete specialist needs rows with all 15 keypoints both to "
                                f"train and to validate on ({int(train.sum())} and {int(val.sum())} here)")
        return replace(data, train_x=data.train_x[train], train_y=data.train_y[train],
                       val_x=data.val_x[val], val_y=data.val_y[val])
    if specialist == COMMON:
        others = np.setdiff1d(np.arange(data.train_y.shape[1]), PARTIAL_COLUMNS)
        masked = [y.copy() for y in (data.train_y, data.val_y)]
        for y in masked:
            y[:, others] = np.nan
        return replace(data, train_y=masked[0], val_y=masked[1])
    raise PipelineError(f"unknown keypoint specialist {specialist!r}")


def split_indices(n, val_fraction, labels=None):
    """Train and validation row indices; stratified by `labels` when every class has two rows."""
    rows = np.arange(n)
    counts = np.bincount(labels) if labels is not None else None
    stratify = labels if counts is not None and counts[counts > 0].min() >= 2 else None
    return train_test_split(rows, test_size=val_fraction, random_state=SPLIT_SEED, stratify=stratify)


def fold_strata(task, data):
    """What the folds keep in proportion: the class for expressions; for keypoints the annotation
    scheme, complete rows (all 15 keypoints) or partial ones (mostly the 4 of the other scheme)."""
    if task == "keypoints":
        return (~np.isnan(data["train_y"]).any(axis=1)).astype(int)
    return np.asarray(data["train_labels"])


def fold_of_rows(task, data, folds, seed):
    """(n,) int: the fold, 0 .. folds-1, of every training row of the processed arrays `data`;
    stratified by fold_strata and fixed by `seed`."""
    strata = fold_strata(task, data)
    fold = np.empty(len(strata), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():   # a class rarer than `folds` (a small sample's disgust) spreads as it can
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        for k, (_, held_out) in enumerate(splitter.split(np.zeros((len(strata), 1)), strata)):
            fold[held_out] = k
    return fold


def fold_split(fold, k):
    """Train and validation row indices of fold `k`."""
    return np.flatnonzero(fold != k), np.flatnonzero(fold == k)
