"""Training on several devices: TensorFlow's tf.distribute, or Keras's DataParallel on JAX.

The one module where `tf.distribute` is the point. `--strategy`:
- none (the default): one device, the one Keras picks.
- mirrored: synchronous data parallelism over this machine's devices: every GPU, or without GPUs
  every logical CPU device (a CPU split in two is how the tests run it). TensorFlow:
  MirroredStrategy; JAX: keras.distribution.DataParallel.
- multiworker: synchronous data parallelism over several machines (TensorFlow only):
  MultiWorkerMirroredStrategy, the cluster and this machine's place in it read from TF_CONFIG.
  Every worker runs the same command on its own copy of the data, in its own --root; each builds
  only its share of every global batch, the gradients are all-reduced, and every worker ends with
  the same weights and writes the same run folder.

Keras 3.15's `fit` cannot train under MultiWorkerMirroredStrategy: it reads the first batch's shapes
with an eager all-reduce that rejects PerReplica values (keras/src/backend/tensorflow/trainer.py,
_maybe_symbolic_build), and every step averages the scalar losses with `strategy.reduce("MEAN", v,
axis=0)` (reduce_per_replica), which a scalar has no axis 0 for. So multiworker has its own epoch
loop here: the model's own `train_step` (loss, gradients, the optimizer's all-reduce, metrics) runs
in each replica, and Keras's callbacks and progress line are driven as `fit` drives them.

`--batch-size` stays the global batch, the batch one optimizer step averages over, so a run means
the same on one device or eight: the replicas split it. To use N devices fully, raise --batch-size
and --lr N-fold together (the linear scaling rule, Goyal et al. 2017). The batch must divide evenly.
"""
import collections
import concurrent.futures
import contextlib
import json
import os
import signal
from dataclasses import dataclass

import keras
import numpy as np

from pipeline.core.errors import PipelineError
from pipeline.training import feed


@dataclass
class Placement:
    scope: contextlib.AbstractContextManager   # build and compile the model inside it
    replicas: int = 1                          # over all workers
    worker: int = 0                            # this machine's place among the workers
    workers: int = 1
    multiworker: object = None                 # a multiworker run's MultiWorkerMirroredStrategy

    def fit(self, model, batches, *, epochs, initial_epoch=0, callbacks=(), verbose=2):
        """Train `model` on `batches` (augment.Batches of this worker's share) like `model.fit`."""
        if self.multiworker is None:
            # Batches shuffles itself from (seed, epoch); Keras's own shuffle draws on the global
            # RNG, which a resumed run cannot replay.
            data, needed = feed.for_fit(batches) if self.replicas == 1 else (batches, [])
            return model.fit(data, epochs=epochs, shuffle=False, initial_epoch=initial_epoch,
                             callbacks=[*needed, *callbacks], verbose=verbose)
        return _fit_across_workers(self.multiworker, model, batches, epochs=epochs, initial_epoch=initial_epoch,
                                   callbacks=callbacks, verbose=verbose)

    def any_signal(self, signum):
        """The stop signal this run obeys at an epoch's end, given this worker's (None: none): on
        several workers a collective, called once per epoch by every worker, so that a signal to any
        of them stops all after the same epoch (one that stopped alone would leave the others waiting
        in their next all-reduce); the others obey SIGTERM."""
        if self.multiworker is None:
            return signum
        signalled = _from_every_worker(self.multiworker, [signum is not None]).any()
        return signum or (signal.SIGTERM if signalled else None)


def placement(name, batch_size):
    """The Placement for strategy `name`, after checking that `batch_size` splits evenly."""
    if name == "none":
        return Placement(contextlib.nullcontext())
    backend = keras.config.backend()
    if name == "multiworker":
        if backend != "tensorflow":
            raise PipelineError(f"--strategy multiworker needs the TensorFlow backend, not {backend}")
        found = _multiworker()
    elif backend == "jax":
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
    import tensorflow as tf  # its strategies are the point here; the JAX backend runs without TensorFlow

    gpus = tf.config.list_logical_devices("GPU")
    strategy = tf.distribute.MirroredStrategy(devices=[d.name for d in gpus or tf.config.list_logical_devices("CPU")])
    return Placement(strategy.scope(), replicas=strategy.num_replicas_in_sync)


def cluster_from_environment():
    """(this worker's index, number of workers) from TF_CONFIG, with a clear error when it is unusable.
    A "chief" task, if the cluster names one, counts as worker 0."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise PipelineError('--strategy multiworker reads the cluster from TF_CONFIG, which is not set; e.g. '
                            'TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                            '"task": {"type": "worker", "index": 0}}\' on the first machine (README)')
    try:
        config = json.loads(text)
        tasks = [(kind, i) for kind in ("chief", "worker") for i in range(len(config["cluster"].get(kind, [])))]
        task = (config["task"]["type"], int(config["task"]["index"]))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise PipelineError(f"TF_CONFIG is not a cluster description ({type(error).__name__}: {error}): "
                            f"expected {{\"cluster\": {{\"worker\": [...]}}, \"task\": {{\"type\": \"worker\", "
                            f"\"index\": 0}}}}") from None
    if task not in tasks:
        raise PipelineError(f"TF_CONFIG: task {task[0]} {task[1]} is not in its cluster "
                            f"({len(tasks)} chief and worker tasks)")
    return tasks.index(task), len(tasks)


def _multiworker():
    import tensorflow as tf  # its strategies are the point here; the JAX backend runs without TensorFlow

    worker, workers = cluster_from_environment()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    return Placement(strategy.scope(), replicas=strategy.num_replicas_in_sync, worker=worker,
                     workers=workers, multiworker=strategy)


def _fit_across_workers(strategy, model, batches, *, epochs, initial_epoch, callbacks, verbose):
    """`model.fit` under MultiWorkerMirroredStrategy (see the module's docstring for why).

    Unlike fit: the step is not compiled with XLA, and `model.stop_training` is read at the end of
    each epoch only (the workers agree on it there, since they validate the same weights alike).
    """
    import tensorflow as tf  # its strategies are the point here; the JAX backend runs without TensorFlow

    local_replicas = len(strategy.extended.worker_devices)

    def per_replica(batch):   # this worker's share of the global batch, split over its own devices
        size = len(batch[0]) // local_replicas

        def replica_part(context):
            start = (context.replica_id_in_sync_group % local_replicas) * size
            return tuple(part[start:start + size] for part in batch)

        return strategy.experimental_distribute_values_from_function(replica_part)

    @tf.function
    def step(data):
        strategy.run(model.train_step, args=(data,))

    with strategy.scope():
        _build_training_state(model, batches[0])
    _check_workers_agree(strategy, {"first epoch": initial_epoch, "steps per epoch": len(batches),
                                    "weights checksum": sum(float(np.sum(w, dtype=np.float64)) for w in model.get_weights())})
    callbacks = keras.callbacks.CallbackList(list(callbacks), add_history=True, add_progbar=verbose != 0, model=model,
                                             verbose=verbose, epochs=epochs, steps=len(batches))
    model.stop_training = False
    batches.on_epoch_end()   # as fit does before its first epoch (EpochIterator.reset): the same orders
    callbacks.on_train_begin()
    logs = {}
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        callbacks.on_epoch_begin(epoch)
        for index, batch in enumerate(_prefetched(batches)):
            callbacks.on_train_batch_begin(index)
            step(per_replica(batch))
            callbacks.on_train_batch_end(index)
        # Read across replicas: the metrics' totals and counts are summed over all workers first.
        logs = {name: float(value) for name, value in model.get_metrics_result().items()}
        batches.on_epoch_end()
        callbacks.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    model.optimizer.finalize_variable_values(model.trainable_variables)
    callbacks.on_train_end(logs)
    return model.history


def _build_training_state(model, batch):
    """Create the compiled loss's, metrics' and optimizer's variables, eagerly and once: inside the
    traced step, in a replica, creating them would fail."""
    x, y = batch[0][:1], batch[1][:1]
    predicted = model(x, training=False)
    model.compute_loss(x, y, predicted)
    model.compute_metrics(x, y, predicted, None)
    model.reset_metrics()
    if not model.optimizer.built:   # a resumed run's optimizer comes with its state
        model.optimizer.build(model.trainable_variables)


def _check_workers_agree(strategy, values):
    """Raise on every worker unless all workers have the same `values` ({name: number}): workers that
    resumed from different epochs, or hold data of different sizes, would otherwise wait on each
    other forever or train apart."""
    every = _from_every_worker(strategy, list(values.values()))
    differ = [f"{name} ({', '.join(f'{v:.10g}' for v in every[:, i])})"
              for i, name in enumerate(values) if len(set(every[:, i])) > 1]
    if differ:
        raise PipelineError(f"the workers disagree on {'; '.join(differ)}: give every worker the same data "
                            "and options, and with --resume the backups of the same epoch")


def _from_every_worker(strategy, numbers):
    """(workers, len(numbers)) float64 array: every worker's `numbers`, in worker order, on every
    worker (a collective: all workers must call it together)."""
    import tensorflow as tf  # its strategies are the point here; the JAX backend runs without TensorFlow

    mine = tf.constant([numbers], tf.float64)
    every = strategy.gather(strategy.experimental_distribute_values_from_function(lambda context: mine), axis=0)
    return every.numpy()[::len(strategy.extended.worker_devices)]   # one row per replica: keep one per worker


def _prefetched(batches, ahead=4):
    """batches[0], batches[1], ... built in worker threads, at most `ahead` in flight (Keras's
    PyDataset adapter does the same in `fit`)."""
    with concurrent.futures.ThreadPoolExecutor(max(1, batches.workers)) as pool:
        pending = collections.deque(pool.submit(batches.__getitem__, i) for i in range(min(ahead, len(batches))))
        for index in range(len(batches)):
            batch = pending.popleft().result()
            if index + ahead < len(batches):
                pending.append(pool.submit(batches.__getitem__, index + ahead))
            yield batch
