"""Optimizers, learning-rate schedules and class weights, built from a run's named parameters."""
import keras
import numpy as np
from sklearn.utils.class_weight import compute_class_weight

from pipeline.core.errors import PipelineError
from pipeline.models import adam
from pipeline.models.schedules import cosine_with_warmup


def make_optimizer(name, learning_rate, weight_decay=0.0):
    """`learning_rate` is a number or a keras LearningRateSchedule."""
    decay = weight_decay or None
    if name == "sgd":
        # Plain SGD barely moves these nets from scratch; Nesterov momentum is the usual recipe.
        return keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True, weight_decay=decay)
    if name == "adamw":
        return adam.AdamW(learning_rate, weight_decay=weight_decay)
    if name in ("adam", "adamax"):
        return {"adam": adam.Adam, "adamax": keras.optimizers.Adamax}[name](learning_rate, weight_decay=decay)
    raise PipelineError(f"unknown optimizer {name!r}; choose one of: adam, adamw, adamax, sgd")


def learning_rate(params, steps_per_epoch):
    """The optimizer's learning rate for a run: Keras's CosineDecay with a linear warm-up for "cosine"
    (saved with the optimizer, so a resumed run continues it), else the number."""
    if params["schedule"] == "cosine":
        return cosine_with_warmup(params["lr"], params["warmup_epochs"] * steps_per_epoch,
                                  params["epochs"] * steps_per_epoch)
    return params["lr"]


def schedule_callbacks(params, monitor, mode):
    """Callbacks that carry out the schedule: ReduceLROnPlateau for "plateau", else none.

    "plateau" cuts the rate by 4x after max(1, patience // 3) epochs without a better `monitor`,
    so it gets two or three chances to help before early stopping (which waits `patience`) gives up.
    """
    if params["schedule"] != "plateau":
        return []
    return [keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode=mode, factor=0.25,
                                              patience=max(1, params["patience"] // 3),
                                              min_lr=params["lr"] / 1000, verbose=0)]


def class_weights(labels, n_classes, mode="none"):
    """{class: weight} for (n,) integer labels.

    "balanced" is scikit-learn's: n / (classes present * its count), so FER2013's rare Disgust
    (~1.5% of rows) counts as much as Happy in the loss; "sqrt" is its square root, a milder
    correction that costs less accuracy on the common classes, scaled so that the average weight
    per training row stays 1 (as "balanced" does by construction), leaving the learning rate's
    meaning unchanged. Classes with no rows get 1.
    """
    if mode not in ("none", "balanced", "sqrt"):
        raise PipelineError(f"unknown class weight mode {mode!r}; choose one of: none, balanced, sqrt")
    labels = np.asarray(labels, int)
    weights = np.ones(n_classes)
    if mode == "none":
        return {c: 1.0 for c in range(n_classes)}
    present = np.unique(labels)
    weights[present] = compute_class_weight("balanced", classes=present, y=labels)
    if mode == "sqrt":
        counts = np.bincount(labels, minlength=n_classes)[:n_classes]
        weights[present] = np.sqrt(weights[present])
        weights[present] *= counts.sum() / (counts * weights).sum()
    return {c: float(w) for c, w in enumerate(weights)}
