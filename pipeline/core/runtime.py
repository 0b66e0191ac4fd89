"""How the process runs TensorFlow: settings that must be in place before it is first imported.

Importing `pipeline` applies them (see pipeline/__init__.py), so every entry point (run.py, the
benchmarks, the tests) gets the same kernels and the same quiet terminal. A variable the user has
already set is left as it is.

- oneDNN kernels on (TF_ENABLE_ONEDNN_OPTS=1). TensorFlow turns them on by itself only on CPUs with
  AVX-512 VNNI/BF16 or AMX; elsewhere it runs Eigen's. Measured on an AMD EPYC (Zen 3, AVX2, 2 cores),
  steps of 32: mini_xception 258 -> 131 ms, resnet_keypoints 158 -> 130 ms. So every CPU takes the
  same, faster path, including the CPUs where the tests run. oneDNN's strided 1x1 convolution has a
  bug that the models avoid by construction (see pipeline/models/layers.py, strided_pointwise).
- Quiet: TensorFlow's C++ log below FATAL is off (TF_CPP_MIN_LOG_LEVEL=3), the lines its libraries
  print while they load (before absl is initialised, which no variable turns off) go to /dev/null,
  and the Python loggers of TensorFlow and JAX report errors only. configure(verbose=True), which
  `run.py --verbose` calls, brings all of it back.
"""
import contextlib
import importlib.abc
import importlib.util
import logging
import os
import sys

KERNELS = {"TF_ENABLE_ONEDNN_OPTS": "1"}
QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3"}
QUIET_LOGGERS = ("tensorflow", "absl", "jax._src.xla_bridge")

_set_here = set()   # the variables this module set (a user's own settings are never touched)


def configure(verbose=False):
    """Apply the settings; with `verbose`, undo the quiet ones (only effective before the import)."""
    for name, value in KERNELS.items():
        _set_default(name, value)
    if verbose:
        for name in QUIET:
            if name in _set_here:
                del os.environ[name]
                _set_here.discard(name)
        _remove_import_hook()
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)
        return
    for name, value in QUIET.items():
        _set_default(name, value)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietImport())


def _set_default(name, value):
    if name not in os.environ:
        os.environ[name] = value
        _set_here.add(name)


def _remove_import_hook():
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _QuietImport)]


@contextlib.contextmanager
def stderr_to_devnull():
    """Point file descriptor 2 (what C++ code writes to) at /dev/null for the duration."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds the `tensorflow` package once and loads it with stderr silenced."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        _remove_import_hook()
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        with stderr_to_devnull():
            self.loader.exec_module(module)

    def __getattr__(self, name):   # resource readers and the like come from the real loader
        return getattr(self.loader, name)
