"""Undo TensorFlow's malloc settings that make CPU training from a PyDataset twice as slow.

With the TensorFlow backend, Keras feeds a PyDataset (our augmenting Batches) through tf.data's
generator dataset, and that op tunes glibc's malloc down to 128 KiB thresholds ("Memory patch
applied: M_TRIM_THRESHOLD=128 kb was set" in the log). From then on nearly every activation
buffer is a fresh mmap that is faulted in and unmapped again at every step. Measured on 2 CPU
cores, mini_xception, batch 32 of 48x48 images: 230 ms a step and 2.5 million page faults an
epoch; with the thresholds raised again after TensorFlow has set them, 105 ms and 4 thousand.
"""
import ctypes
import ctypes.util
import functools

import keras

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3   # glibc's mallopt parameters
TF_DATA_THRESHOLD = 128 << 10   # what tf.data's generator sets both to
THRESHOLD = 64 << 20   # buffers below 64 MiB are reused from the heap, and it is never trimmed


@functools.cache
def _mallopt():
    """glibc's mallopt, or None elsewhere (macOS, musl), where there is nothing to undo."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version   # only glibc has it
        return libc.mallopt
    except (OSError, AttributeError):
        return None


def available():
    return _mallopt() is not None


def set_thresholds(nbytes):
    """Set malloc's trim and mmap thresholds (glibc only; elsewhere nothing to do)."""
    if available():
        _mallopt()(M_TRIM_THRESHOLD, nbytes)
        _mallopt()(M_MMAP_THRESHOLD, nbytes)


def keep_buffers():
    """Raise malloc's thresholds back (cheap: call it as often as needed)."""
    set_thresholds(THRESHOLD)


class KeepBuffers(keras.callbacks.Callback):
    """Re-applies keep_buffers before every batch: tf.data sets its thresholds whenever it builds
    an epoch's generator, lazily, so no single moment is sure to come after it. A few microseconds
    a step; a no-op outside TensorFlow on glibc."""

    def __init__(self):
        super().__init__()
        self.active = keras.config.backend() == "tensorflow" and available()

    def on_train_batch_begin(self, batch, logs=None):
        if self.active:
            keep_buffers()
