"""Training on several devices: TensorFlow's tf.distribute, or Keras's DataParallel on JAX.

The one module where `tf.distribute` is the point. `--strategy`:
- none (the default): one device, the one Keras picks.
- mirrored: synchronous data parallelism over this machine's devices: every GPU, or without GPUs
  every logical CPU device (a CPU split in two is how the tests run it). TensorFlow:
  MirroredStrategy; JAX: keras.distribution.DataParallel.

Not here: MultiWorkerMirroredStrategy. Tried with two workers on loopback (TF 2.21, Keras 3.15): the
input splits correctly (each worker gets its half of every global batch), but Keras's fit fails
twice. It reads the first batch's shapes with an eager all-reduce that rejects PerReplica values
(keras/src/backend/tensorflow/trainer.py, _maybe_symbolic_build), and with that stepped around,
every step averages the scalar loss across workers with `strategy.reduce("MEAN", v, axis=0)`
(reduce_per_replica, reduction "auto" hard-coded), which a scalar has no axis 0 for.

`--batch-size` stays the global batch, the batch one optimizer step averages over, so a run means
the same on one device or eight: the replicas split it. To use N devices fully, raise --batch-size
and --lr N-fold together (the linear scaling rule, Goyal et al. 2017). The batch must divide evenly.
"""
import contextlib
from dataclasses import dataclass

from .errors import PipelineError

STRATEGIES = ("none", "mirrored")


@dataclass
class Placement:
    scope: contextlib.AbstractContextManager   # build and compile the model inside it
    replicas: int = 1


def placement(name, batch_size):
    """The Placement for strategy `name`, after checking that `batch_size` splits evenly."""
    import keras

    if name == "none":
        return Placement(contextlib.nullcontext())
    backend = keras.config.backend()
    if backend == "jax":
        devices = keras.distribution.list_devices()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        found = Placement(contextlib.nullcontext(), replicas=len(devices))
    elif backend == "tensorflow":
        found = _mirrored()
    else:
        raise PipelineError(f"--strategy {name} needs the TensorFlow or JAX backend, not {backend}")
    if batch_size % found.replicas:
        raise PipelineError(f"--batch-size {batch_size} does not split over {found.replicas} replicas; "
                            f"use a multiple of {found.replicas}")
    return found


def _mirrored():
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    strategy = tf.distribute.MirroredStrategy(devices=[d.name for d in gpus or tf.config.list_logical_devices("CPU")])
    return Placement(strategy.scope(), replicas=strategy.num_replicas_in_sync)
