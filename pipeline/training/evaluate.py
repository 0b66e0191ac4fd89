"""A trained model's (or an ensemble's) final validation scores, under every test-time augmentation,
beside the baseline's: what metrics.json holds."""
import warnings

import numpy as np

from pipeline.core.recipes import TTA_VIEWS
from pipeline.inference.tta import predict_keypoints, predict_probabilities


def final_metrics(task, models, data, params):
    """Validation scores of `models` (the restored best weights, or an ensemble's members, averaged)
    under each test-time augmentation (val_accuracy, val_accuracy_flip, val_accuracy_multi;
    val_rmse...), and the baseline's."""
    batch_size = params["batch_size"]
    if task == "keypoints":
        truth = data.scaling.inverse_transform(data.val_y)
        with warnings.catch_warnings():   # a specialist's masked keypoints have no mean (nor truth to score)
            warnings.simplefilter("ignore", RuntimeWarning)
            means = np.nanmean(data.scaling.inverse_transform(data.train_y), axis=0)
        scores = {tta: score(task, predict_keypoints(models, data.val_x, data.scaling, batch_size, tta), truth)
                  for tta in TTA_VIEWS}
        return {**tta_keys("val_rmse", scores), "baseline_rmse": score(task, np.broadcast_to(means, truth.shape), truth)}
    majority = int(np.bincount(data.train_labels).argmax())
    scores = {tta: score(task, predict_probabilities(models, data.val_x, batch_size, tta), data.val_labels)
              for tta in TTA_VIEWS}
    return {**tta_keys("val_accuracy", scores), "majority_accuracy": float(np.mean(data.val_labels == majority)),
            "majority_class": majority}


def score(task, predicted, truth, fold=None):
    """RMSE in pixels over the known coordinates, or accuracy against labels; per fold when `fold` is given."""
    if fold is not None:
        return [score(task, predicted[fold == k], truth[fold == k]) for k in np.unique(fold)]
    if task == "keypoints":
        present = ~np.isnan(truth)
        return float(np.sqrt(np.mean((predicted - truth)[present] ** 2)))
    return float(np.mean(predicted.argmax(1) == truth))


def tta_keys(name, scores):
    """{"none": a, "flip": b} -> {name: a, name_flip: b}."""
    return {name if tta == "none" else f"{name}_{tta}": value for tta, value in scores.items()}
