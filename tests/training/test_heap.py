"""heap.keep_buffers undoes the 128 KiB malloc thresholds tf.data's generator dataset sets."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.training import heap

pytestmark = pytest.mark.skipif(not heap.available(), reason="glibc only")

# In a fresh process, whose heap has no large free blocks yet that malloc could hand out instead.
MEASURE = """
import json, resource
import numpy as np
from pipeline.training import heap

def page_faults_allocating(times=50):
    started = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(times):
        buffer = np.ones(1 << 18, np.float32)   # 1 MiB, every page touched
        del buffer
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - started

heap.set_thresholds(heap.TF_DATA_THRESHOLD)   # what tf.data's "memory patch" sets
patched = page_faults_allocating()
heap.keep_buffers()
print(json.dumps({"patched": patched, "kept": page_faults_allocating(),
                  "pages_per_mib": (1 << 20) // resource.getpagesize()}))
"""


def test_freed_buffers_are_reused_instead_of_mapped_again():
    result = subprocess.run([sys.executable, "-c", MEASURE], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).parents[2])
    faults = json.loads(result.stdout)
    assert faults["patched"] >= 40 * faults["pages_per_mib"], faults   # a fresh mapping per buffer
    assert faults["kept"] <= 5 * faults["pages_per_mib"], faults       # one heap block, reused


def test_the_callback_acts_only_under_tensorflow():
    import keras

    assert heap.KeepBuffers().active == (keras.config.backend() == "tensorflow")
