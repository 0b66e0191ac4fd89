"""TensorFlow SavedModel and ONNX export: the one module where `tf.*` is the point.

The SavedModel's `serving_default` signature takes `image` (float32, [None, h, w, 1], values in
[0, 1]) and returns {output_name: float32 [None, k]}; `metadata.json` rides along in
`assets.extra/`, where TensorFlow Serving keeps files that are not part of the graph. A fresh
process loads it with `tf.saved_model.load(path).signatures["serving_default"]`; TensorFlow must be
the Keras backend that writes it.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import tensorflow as tf

from pipeline.core.errors import PipelineError
from pipeline.core.fileio import atomic_path, replace_folder


def write(model, predictor, output_name, path, extra_files=None):
    """Write `model` (Keras, TensorFlow backend) as a SavedModel folder at `path`, atomically: the
    folder is built beside it and swapped in whole."""
    if keras.config.backend() != "tensorflow":
        raise RuntimeError("a SavedModel is written with the TensorFlow backend (unset KERAS_BACKEND)")
    path = Path(path)
    building = path.with_name(f".{path.name}.{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    spec = tf.TensorSpec([None, *predictor["input_shape"]], tf.float32, name="image")
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", lambda image: {output_name: model(image, training=False)},
                         input_signature=[spec])
    try:
        archive.write_out(str(building), verbose=False)
        extra = building / "assets.extra"
        extra.mkdir(exist_ok=True)
        for name, source in (extra_files or {}).items():
            shutil.copyfile(source, extra / name)
        replace_folder(building, path)
    finally:
        shutil.rmtree(building, ignore_errors=True)


def outputs(path, images):
    """The SavedModel's serving outputs for `images` (numpy), as numpy."""
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    result = serve(image=tf.constant(images))
    (output,) = result.values()
    return output.numpy()


def to_onnx(saved_model, path):
    """Convert a SavedModel folder to ONNX (opset 17) with tf2onnx's converter, atomically. It runs
    in its own process: tf2onnx rewrites the graph with TensorFlow settings of its own."""
    with atomic_path(path, suffix=".onnx") as tmp:
        done = subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(saved_model),
                               "--signature_def", "serving_default", "--opset", "17", "--output", str(tmp)],
                              capture_output=True, text=True)
        if done.returncode:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise PipelineError(f"tf2onnx could not convert {saved_model}: {last}")
