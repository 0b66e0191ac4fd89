"""Learning-rate schedules that saved models refer to: importing this module registers them, so
that a checkpoint's optimizer (training/resume.py) loads with its schedule."""
import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="faces")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Per step: a linear rise from peak/warmup_steps to `peak` over `warmup_steps`, then half a
    cosine down to 0 at `total_steps`. Saved with the optimizer, so a resumed run continues it."""

    def __init__(self, peak, warmup_steps, total_steps):
        self.peak, self.warmup_steps, self.total_steps = float(peak), int(warmup_steps), int(total_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = self.peak * (step + 1) / max(self.warmup_steps, 1)
        progress = ops.minimum((step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1), 1.0)
        cosine = self.peak * 0.5 * (1 + ops.cos(math.pi * progress))
        return ops.where(step < self.warmup_steps, warm, cosine)

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}
