"""The learning-rate schedule that older checkpoints name, read as the library's own.

Runs saved before the cosine schedule became Keras's `CosineDecay` (commit 966001e and earlier) hold
an optimizer whose schedule is "faces>WarmupCosine" {peak, warmup_steps, total_steps}. Importing
this module registers that name, so such a checkpoint loads (and resumes) with the equivalent
CosineDecay from training/optimizers.py.
"""
import keras


def cosine_with_warmup(peak, warmup_steps, total_steps):
    """A linear rise from 0 to `peak` over `warmup_steps`, then half a cosine down to 0 at `total_steps`."""
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else peak, decay_steps=max(total_steps - warmup_steps, 1),
        alpha=0.0, warmup_target=peak if warmup_steps else None, warmup_steps=warmup_steps)


@keras.saving.register_keras_serializable(package="faces", name="WarmupCosine")
class SavedWarmupCosine(keras.optimizers.schedules.CosineDecay):
    """Only ever deserialised: the old schedule's config becomes cosine_with_warmup's CosineDecay."""

    @classmethod
    def from_config(cls, config):
        return cosine_with_warmup(float(config["peak"]), int(config["warmup_steps"]), int(config["total_steps"]))
