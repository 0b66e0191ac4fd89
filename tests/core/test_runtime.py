"""The process settings every entry point shares: oneDNN on, TensorFlow quiet unless asked."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What TensorFlow, absl, CUDA probing and Keras's retracing warnings print, and the pipeline never does.
FRAMEWORK_LOG = re.compile(r"absl::InitializeLog|^[IWEF]\d{4} |cuda|oneDNN custom operations|retracing|"
                           r"cpu_feature_guard|rebuild TensorFlow", re.IGNORECASE | re.MULTILINE)


def python(code, **env):
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "KERAS_"))}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          cwd=ROOT, env={**environment, **env})


@pytest.mark.slow   # a subprocess that imports TensorFlow
def test_importing_the_pipeline_then_keras_prints_nothing_and_turns_onednn_on():
    done = python("import os, pipeline, keras, numpy as np\n"
                  "m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])\n"
                  "m.compile('adam', 'mse'); m.fit(np.ones((5, 3)), np.ones((5, 2)), verbose=0)\n"
                  "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], os.environ['TF_CPP_MIN_LOG_LEVEL'])")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "3"]
    assert not FRAMEWORK_LOG.search(done.stdout + done.stderr), done.stderr


def test_the_users_own_settings_win():
    done = python("import os, pipeline; print(os.environ['TF_ENABLE_ONEDNN_OPTS'], os.environ['TF_CPP_MIN_LOG_LEVEL'])",
                  TF_ENABLE_ONEDNN_OPTS="0", TF_CPP_MIN_LOG_LEVEL="1")
    assert done.stdout.split() == ["0", "1"]


def test_verbose_takes_the_quiet_settings_back():
    done = python("import os, sys, pipeline\n"
                  "pipeline.core.runtime.configure(verbose=True)\n"
                  "from pipeline.core.runtime import _QuietImport\n"
                  "print('TF_CPP_MIN_LOG_LEVEL' in os.environ, any(isinstance(f, _QuietImport) for f in sys.meta_path))")
    assert done.stdout.split() == ["False", "False"]


@pytest.mark.slow
def test_a_tiny_run_all_prints_only_the_pipelines_lines(tmp_path):
    done = subprocess.run([sys.executable, "run.py", "--root", str(tmp_path), "all", "--task", "expressions",
                           "--sample-size", "0.05", "--epochs", "1"], capture_output=True, text=True, timeout=900,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not FRAMEWORK_LOG.search(done.stdout + done.stderr), done.stdout + done.stderr
    assert "expressions train" in done.stdout and " - val_accuracy: " in done.stdout   # Keras's epoch line
