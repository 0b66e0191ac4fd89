"""TensorFlow's CPU threads for a training: which layout it wants, setting it, and a fresh process
for it when this one's TensorFlow already runs with another.

TensorFlow runs a step's operations on inter-op threads, and splits each operation over intra-op
threads; by default one of each per core. On 2 cores that splits every operation in two, and two
operations side by side then contend for the cores: for models whose steps are many small
operations in bfloat16 (residual blocks on maps of 24x24 and less, depthwise convolutions) each
operation on one core, two side by side, trained faster. From in-memory batches (Intel Xeon with
AMX, 2 cores, mixed bfloat16, the recipes' batch sizes, median of 3 epochs, one after the other):

    model               TensorFlow's default    one core per operation
    heatmap_keypoints         733 img/s              812-870 img/s
    resnet_keypoints        1,152                  1,308
    mini_xception             366                    724
    compact_vgg             2,375                  2,123   (larger convolutions: split them)
    compact_vgg_wide        1,017                    831
    densenet                  122                     93
    heatmap_keypoints f32     444                    422   (float32 too)

A process's pools are made once, at its first TensorFlow operation, so a training that wants
another layout than the one running trains in a fresh process (`call`).
"""
import contextlib
import multiprocessing
import os
import signal
import threading
import traceback

from pipeline.core.errors import PipelineError

# Models that train faster with one core per operation in mixed bfloat16 (the table above).
ONE_CORE_PER_OP = {"heatmap_keypoints", "resnet_keypoints", "mini_xception"}
DEFAULT = (0, 0)   # TensorFlow's own: one inter-op and one intra-op thread per core
USER_SETTINGS = ("TF_NUM_INTEROP_THREADS", "TF_NUM_INTRAOP_THREADS")


def layout_for(model, precision, strategy="none"):
    """(inter-op, intra-op) threads for training `model` with TensorFlow on the CPU: two operations
    side by side on half the cores each for ONE_CORE_PER_OP in mixed precision, DEFAULT otherwise;
    None where the layout is not this module's to choose: another backend, a GPU, a distribution
    strategy, or TF_NUM_INTEROP_THREADS / TF_NUM_INTRAOP_THREADS set by the user."""
    import keras  # the backend decides: only TensorFlow's pools are laid out here

    from pipeline.core import devices  # Keras at import: only once a layout is asked for

    if (keras.config.backend() != "tensorflow" or strategy != "none" or any(v in os.environ for v in USER_SETTINGS)
            or devices.has_gpu()):
        return None
    if model in ONE_CORE_PER_OP and precision == "mixed":
        return 2, max(1, len(os.sched_getaffinity(0)) // 2)
    return DEFAULT


def running():
    """(inter-op, intra-op) threads TensorFlow runs with in this process: what tf.config gave it, else
    what TF_NUM_INTEROP_THREADS / TF_NUM_INTRAOP_THREADS say (TensorFlow reads them itself, and
    tf.config does not report them); 0: its default, one per core."""
    import tensorflow as tf  # its pools are the point

    threading_config = tf.config.threading
    given = threading_config.get_inter_op_parallelism_threads(), threading_config.get_intra_op_parallelism_threads()
    return tuple(number or _from_environment(name) for number, name in zip(given, USER_SETTINGS))


def _from_environment(name):
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() else 0   # as TensorFlow: anything else is its default


def use(layout):
    """Give TensorFlow `layout` unless its pools exist already; whether this process runs with it
    (None: any layout will do)."""
    if layout is None:
        return True
    import tensorflow as tf  # its pools are the point

    try:
        tf.config.threading.set_inter_op_parallelism_threads(layout[0])
        tf.config.threading.set_intra_op_parallelism_threads(layout[1])
    except RuntimeError:   # TensorFlow has run an operation in this process: its pools are made
        pass
    return running() == tuple(layout)


def describe(layout):
    inter, intra = layout
    return "TensorFlow's default threads" if layout == DEFAULT else f"{inter} inter-op x {intra} intra-op threads"


def call(layout, function, *args, **kwargs):
    """function(*args, **kwargs) in a fresh Python process whose TensorFlow runs with `layout`: its
    return value, or its PipelineError raised here. Ctrl-C and SIGTERM to this process go on to it,
    so that a training stops after its epoch as it would here. Its output goes where this one's does."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(sender, layout, function, args, kwargs))
    child.start()
    sender.close()

    def forward(signum, frame):
        with contextlib.suppress(ProcessLookupError):   # it has just ended
            os.kill(child.pid, signum)

    main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
    try:
        try:
            kind, value = receiver.recv()
        except EOFError:
            kind, value = "crash", "it ended without an answer"
        child.join()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if kind == "ok":
        return value
    if kind == "error":
        raise PipelineError(*value)
    if kind == "interrupt":
        raise KeyboardInterrupt
    raise RuntimeError(f"{function.__qualname__} failed in its own process (exit code {child.exitcode}):\n{value}")


def _child(sender, layout, function, args, kwargs):
    os.setpgid(0, 0)   # a terminal's Ctrl-C reaches the parent alone, which passes it on once
    use(layout)
    try:
        sender.send(("ok", function(*args, **kwargs)))
    except PipelineError as error:
        sender.send(("error", (str(error), error.exit_code)))
    except KeyboardInterrupt:
        sender.send(("interrupt", None))
    except BaseException:
        sender.send(("crash", traceback.format_exc()))
