"""Training recipes: optimizers, learning-rate schedules, class weights, soft-label loss.

Named choices only, so a run's params.json says everything about how it was trained.
"""
import math

import numpy as np

from pipeline.errors import PipelineError

OPTIMIZERS = ("adam", "sgd", "adamax")
SCHEDULES = ("none", "cosine", "plateau")
CLASS_WEIGHTS = ("none", "balanced", "sqrt")


def _check(kind, name, choices):
    if name not in choices:
        raise PipelineError(f"unknown {kind} {name!r}; choose one of: {', '.join(choices)}")


def make_optimizer(name, lr):
    _check("optimizer", name, OPTIMIZERS)
    import keras

    if name == "sgd":
        # Plain SGD barely moves these nets from scratch; Nesterov momentum is the usual recipe.
        return keras.optimizers.SGD(lr, momentum=0.9, nesterov=True)
    return {"adam": keras.optimizers.Adam, "adamax": keras.optimizers.Adamax}[name](lr)


def cosine_lr(epoch, lr, epochs):
    """Half a cosine from `lr` at epoch 0 towards 0 at `epochs` (never exactly 0 while training)."""
    return lr * 0.5 * (1 + math.cos(math.pi * min(epoch, epochs) / max(epochs, 1)))


def schedule_callbacks(name, lr, epochs, patience):
    """Keras callbacks that carry out the schedule `name`; [] for "none".

    "plateau" cuts the rate by 5x after patience // 3 epochs without a better val_loss, so it gets
    two or three chances to help before early stopping (which waits `patience`) gives up.
    """
    _check("schedule", name, SCHEDULES)
    import keras

    if name == "cosine":
        return [keras.callbacks.LearningRateScheduler(lambda epoch: cosine_lr(epoch, lr, epochs))]
    if name == "plateau":
        return [keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.2, patience=max(1, patience // 3), min_lr=lr / 1000)]
    return []


def class_weights(labels, n_classes, mode="none"):
    """{class: weight} for (n,) integer labels.

    "balanced" weighs each class by n / (classes present * its count), so FER2013's rare Disgust
    (~1.5% of rows) counts as much as Happy in the loss; "sqrt" is its square root, a milder
    correction that costs less accuracy on the common classes. Both are scaled so the average
    weight per training row is 1, leaving the learning rate's meaning unchanged. Classes with no
    rows get 1.
    """
    _check("class weight mode", mode, CLASS_WEIGHTS)
    counts = np.bincount(np.asarray(labels, int), minlength=n_classes)[:n_classes].astype(float)
    if mode == "none":
        return {c: 1.0 for c in range(n_classes)}
    present = counts > 0
    weights = np.ones(n_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    if mode == "sqrt":
        weights[present] = np.sqrt(weights[present])
        weights[present] *= counts.sum() / (counts * weights).sum()
    return {c: float(w) for c, w in enumerate(weights)}


def soft_label_loss(label_smoothing=0.0):
    """Loss for FERPlus vote distributions: categorical cross-entropy accepts probability vectors
    as targets unchanged (one-hot targets are its special case), so hard and soft labels share it.
    Accuracy is still measured against the majority label."""
    import keras

    return keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
