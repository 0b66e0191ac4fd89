"""augment.Batches into model.fit through tf.data on the TensorFlow backend (the one module where
tf.data is the point).

Keras feeds a PyDataset through a queue of its own: worker threads put batches on it, and a
tf.data generator takes them off, one Python call per batch. A parallel tf.data map over the batch
indices calls Batches itself instead, on tf.data's threads, and the model trains 5-10% faster
for it on 2 cores (Intel Xeon with AMX, `bench train` before and after, alternating, images/s
through the input path): compact_vgg 1,075-1,097 -> 1,164-1,174 in float32 and 1,722-1,777 ->
1,872-2,004 in mixed bfloat16; heatmap_keypoints 375-378 -> 403-407 and 710-743 -> 787-799.

The batches are the same, in the same order: each epoch's order and draws come from (seed, epoch,
batch index) as before, and the epoch is set at each epoch's start (resumed runs included) by a
callback that fit must be given. Keras's fit ends a PyDataset's epoch once before its first one
(EpochIterator.reset calls on_epoch_end), so fit's epoch e has always drawn Batches' epoch e + 1;
that stays, and a run trains on exactly the batches it trained on before. On other backends
model.fit takes the Batches as they are.
"""
import keras


def for_fit(batches):
    """(what model.fit should take, the callbacks it needs for it) for `batches` (augment.Batches)."""
    if keras.config.backend() != "tensorflow":
        return batches, []
    import tensorflow as tf  # tf.data is the point

    first = batches[0]
    parts = first if isinstance(first, tuple) else (first,)
    specs = [tf.TensorSpec(part.shape, part.dtype) for part in parts]

    def batch(index):
        drawn = batches[int(index)]
        return drawn if isinstance(drawn, tuple) else (drawn,)

    def shaped(*tensors):
        tensors = tuple(tf.ensure_shape(tensor, spec.shape) for tensor, spec in zip(tensors, specs))
        return tensors if len(tensors) > 1 else tensors[0]

    def drawn(index):
        return shaped(*tf.numpy_function(batch, [index], [spec.dtype for spec in specs], stateful=True))

    options = tf.data.Options()
    # tf.data's autotuning makes some epochs' iterators take ~2 s to close (core/devices.py input_workers)
    options.autotune.enabled = False
    dataset = (tf.data.Dataset.range(len(batches))
               .map(drawn, num_parallel_calls=max(1, batches.workers), deterministic=True)
               .prefetch(2).with_options(options))
    return dataset, [EpochOf(batches)]


class EpochOf(keras.callbacks.Callback):
    """Sets `batches`' epoch as each of fit's starts, so its order and draws are that epoch's."""

    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        if self.batches.epoch != epoch + 1:   # as Keras's PyDataset feed numbers them (above)
            self.batches.set_epoch(epoch + 1)
