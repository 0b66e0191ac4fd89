"""Validation during training, measured by the pipeline in the competition's own units.

Keras's built-in validation runs the last partial batch as it comes and reports the loss with the
weight penalties included. Here the validation images go through tta.predict_batches (full
batches only) after every epoch, and the metrics are computed in numpy:
- keypoints: val_loss (masked MSE of the scaled targets, the training loss) and val_rmse in pixels
  over the keypoints each row has, the competition's score;
- expressions: val_loss (cross-entropy against the targets, no label smoothing) and val_accuracy
  against the majority label.
Early stopping and the plateau schedule watch competitions.VALIDATION_METRIC.
"""
import keras
import numpy as np

from pipeline.inference.tta import predict_batches


def keypoint_scores(predicted, targets, scaling):
    """val_loss and val_rmse for (n, 30) scaled predictions and targets (NaN where missing)."""
    present = ~np.isnan(targets)
    loss = float(np.mean((predicted - targets)[present] ** 2))
    error = scaling.inverse_transform(predicted) - scaling.inverse_transform(targets)
    return {"val_loss": loss, "val_rmse": float(np.sqrt(np.mean(error[present] ** 2)))}


def expression_scores(probabilities, targets, labels):
    """val_loss and val_accuracy for (n, classes) probabilities, (n, classes) targets (one-hot or vote
    distributions) and (n,) majority labels."""
    clipped = np.clip(probabilities, 1e-7, 1.0)
    loss = float(np.mean(-np.sum(targets * np.log(clipped), axis=1)))
    return {"val_loss": loss, "val_accuracy": float(np.mean(probabilities.argmax(1) == labels))}


class Validation(keras.callbacks.Callback):
    """Adds the validation metrics to each epoch's logs. Must come first among the callbacks, so
    that early stopping, the schedule, the checkpoint and Keras's history and progress line see them."""

    def __init__(self, images, score, batch_size):
        super().__init__()
        self.images, self.score, self.batch_size = images, score, batch_size

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.score(predict_batches(self.model, self.images, self.batch_size)))
