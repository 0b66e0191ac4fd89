"""Which accelerator the active Keras backend will use (reported, never chosen: Keras picks the GPU)."""
import functools
import os

import keras


@functools.cache
def accelerators():
    """Platform names of the backend's devices, e.g. ["GPU"] or ["CPU"]."""
    backend = keras.config.backend()
    try:
        if backend == "jax":
            import jax  # the backend's own: only one of the two is installed on some machines

            return [d.platform.upper() for d in jax.devices()]
        if backend == "tensorflow":
            import tensorflow as tf  # likewise

            return ["GPU"] * len(tf.config.list_physical_devices("GPU")) or ["CPU"]
    except Exception:  # reporting must never stop training
        pass
    return ["CPU"]


def has_gpu():
    return "GPU" in accelerators()


def deterministic():
    """Whether the same seed, data and options give the same model here: yes on the CPU (tested);
    GPU kernels (cuDNN's, XLA's scatter-adds) may sum in a different order from run to run."""
    return not has_gpu()


def jit_compile():
    """XLA for TensorFlow only on a GPU: on the CPU it compiled for 55 s and then ran an epoch 3x
    slower than plain graph mode (resnet_keypoints, 256 images, 2 cores)."""
    return "auto" if has_gpu() else False


def steps_per_execution(strategy="none"):
    """Training steps per call into the compiled step: 8 for TensorFlow on the CPU, where each call
    also goes through Keras's epoch loop and pulls its batch out of Keras's queue through tf.data's
    generator; a call of 8 steps pays that once, in a graph's own loop. Measured on 2 cores (Intel
    Xeon with AMX, `run.py train`'s input path, median of 3 interleaved epochs): heatmap_keypoints
    mixed 562 -> 599 img/s, compact_vgg mixed 2,183 -> 2,347; float32 within the noise (455 -> 451,
    1,295 -> 1,315). From in-memory tf.data no change (644 -> 641): what it saves is the feed's. The
    arithmetic and the order of the steps are unchanged. 1 elsewhere: unmeasured there, and JAX
    would unroll the 8 steps into one compilation. 1 under a distribution `strategy` too: Keras
    3.15's loop of several steps fails under MirroredStrategy ("You must feed a value for
    placeholder tensor"), and multiworker runs its own loop (training/distribute.py)."""
    return 8 if keras.config.backend() == "tensorflow" and not has_gpu() and strategy == "none" else 1


def input_workers():
    """Threads that draw augmented training batches ahead of the model. On a GPU the CPU's
    augmentation is what the model waits for (OpenCV's warp and numpy's array operations release
    the GIL, so threads add up: 1.5x on 2 threads): on an H200 with 16 cores, 8 threads fed 12,900
    faces/s of 48x48 (with the OpenCV warp), 40% of what the GPU took from pre-augmented arrays.

    On the CPU, 2 threads, although one keeps up with the model: with 1, Keras feeds the batches
    through tf.data with autotuning on, whose iterator then takes about 2 s to close at the end of
    about half of the epochs (the next epoch's first step waits for it); with more than one, Keras's
    own queue feeds them and turns autotuning off. Measured on 2 cores (AMD EPYC, compact_vgg,
    mixed, 64 steps an epoch): 1 thread 795 img/s in 7 of 12 epochs and 1,200-1,400 in the others,
    2 threads 1,050-1,290 in all 24; heatmap_keypoints the same within noise (352-396 against 395,
    and no 2 s stalls). With TensorFlow, training/feed.py now draws them on this many of tf.data's
    threads instead, autotuning off likewise."""
    return min(8, os.cpu_count() or 1) if has_gpu() else 2


def describe():
    devices = accelerators()
    gpus = devices.count("GPU")
    return f"{keras.config.backend()} backend on " + (f"GPU x{gpus}" if gpus > 1 else "GPU" if gpus else devices[0])
