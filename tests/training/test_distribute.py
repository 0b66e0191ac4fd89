"""--strategy mirrored on a CPU split into two logical devices, and --strategy multiworker with two
worker processes on loopback ports (in subprocesses: the split, and the cluster, must be set before
TensorFlow starts)."""
import csv
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.training import distribute
from pipeline.data import sample
from pipeline.core.competitions import EXPRESSIONS, KEYPOINTS
from pipeline.core.errors import PipelineError

ROOT = Path(__file__).resolve().parents[2]


def in_subprocesses(test):
    """Marks a test that trains in fresh Python processes: slow, and TensorFlow must be installed."""
    needs_tensorflow = pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="needs TensorFlow")
    return pytest.mark.slow(needs_tensorflow(test))


SPLIT_CPU = """
import os, sys
sys.path.insert(0, ROOT_PATH)
os.environ["KERAS_BACKEND"] = "tensorflow"
import pipeline  # noqa: F401  the quiet terminal and kernels, before TensorFlow starts
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""

SAME_STEPS_ON_ONE_AND_TWO_REPLICAS = SPLIT_CPU + """
import json
import os
from pathlib import Path
import numpy as np
import keras
from pipeline.training import distribute

def trained(strategy):
    keras.utils.set_random_seed(0)
    place = distribute.placement(strategy, batch_size=16)
    with place.scope:
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2)])
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(64, 6)).astype("float32"), rng.normal(size=(64, 2)).astype("float32")
    model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    return place, model

single_place, single = trained("none")
mirrored_place, mirrored = trained("mirrored")
copies = [[np.asarray(v) for v in w.value.values] for w in mirrored.weights]   # one per replica
print(json.dumps({
    "replicas": mirrored_place.replicas,
    "copies_per_weight": [len(c) for c in copies],
    "copies_agree": max(float(np.max(np.abs(c[0] - c[1]))) for c in copies),
    "vs_single": max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                     for a, b in zip(single.weights, mirrored.weights)),
}))
"""

CLI_TRAIN = SPLIT_CPU + """
from pipeline.cli import cli
cli.main(sys.argv[1:], standalone_mode=True)
"""


def run_script(script, *args, timeout=600):
    done = subprocess.run([sys.executable, "-c", script.replace("ROOT_PATH", repr(str(ROOT))), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


@in_subprocesses
def test_two_replicas_train_like_one_device_with_the_same_global_batch():
    result = json.loads(run_script(SAME_STEPS_ON_ONE_AND_TWO_REPLICAS).strip().splitlines()[-1])
    assert result["replicas"] == 2
    assert set(result["copies_per_weight"]) == {2}          # every weight lives on both devices
    assert result["copies_agree"] == 0.0                    # both applied the same all-reduced update
    assert result["vs_single"] < 1e-5                       # and it is the single-device update


@in_subprocesses
def test_train_command_runs_mirrored_and_records_the_replicas(tmp_path):
    raw = tmp_path / "data" / "raw" / KEYPOINTS.slug
    raw.mkdir(parents=True)
    sample.write_sample(KEYPOINTS, raw, seed=3, sizes=sample.SampleSizes(keypoints_train=24, keypoints_test=4))
    run_script(CLI_TRAIN, "--root", str(tmp_path), "--quiet", "all", "--task", "keypoints", "--model", "kaggle_cnn",
               "--epochs", "1", "--batch-size", "8", "--strategy", "mirrored")
    runs = tmp_path / "data" / "runs" / KEYPOINTS.slug
    run_dir = runs / (runs / "latest").read_text().strip()
    assert json.loads((run_dir / "metrics.json").read_text())["replicas"] == 2
    assert json.loads((run_dir / "params.json").read_text())["strategy"] == "mirrored"


@in_subprocesses
def test_a_batch_that_does_not_split_over_the_replicas_is_refused(tmp_path):
    raw = tmp_path / "data" / "raw" / KEYPOINTS.slug
    raw.mkdir(parents=True)
    sample.write_sample(KEYPOINTS, raw, seed=3, sizes=sample.SampleSizes(keypoints_train=24, keypoints_test=4))
    done = subprocess.run([sys.executable, "-c", CLI_TRAIN.replace("ROOT_PATH", repr(str(ROOT))), "--root", str(tmp_path), "all",
                           "--task", "keypoints", "--epochs", "1", "--batch-size", "7", "--strategy", "mirrored"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode != 0
    assert "--batch-size 7 does not split over 2 replicas" in done.stderr


@in_subprocesses
def test_jax_backend_trains_data_parallel_over_two_devices(tmp_path):
    pytest.importorskip("jax")
    raw = tmp_path / "data" / "raw" / KEYPOINTS.slug
    raw.mkdir(parents=True)
    sample.write_sample(KEYPOINTS, raw, seed=3, sizes=sample.SampleSizes(keypoints_train=24, keypoints_test=4))
    # XLA runs each device's program on its CPU client's thread pool: one thread per core, unless the
    # NPROC variable says otherwise. On 2 busy cores the two forced devices often never met in their
    # first all-reduce, and XLA aborted the process after 40 s ("Termination timeout for `all reduce`";
    # a longer timeout only waited longer). The stack shows the waiting program on one of the pool's
    # two threads; most likely the other device's program found no free thread. With a densenet
    # training beside it, 6 of 8 runs aborted with the default pool and none of 16 with NPROC=8.
    env = {**os.environ, "KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "NPROC": "8"}
    command = [sys.executable, "run.py", "--root", str(tmp_path), "--quiet", "all", "--task", "keypoints",
               "--model", "kaggle_cnn", "--epochs", "1", "--batch-size", "8", "--strategy", "mirrored"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    runs = tmp_path / "data" / "runs" / KEYPOINTS.slug
    metrics = json.loads((runs / (runs / "latest").read_text().strip() / "metrics.json").read_text())
    assert metrics["replicas"] == 2


# --- multiworker: two worker processes on loopback ports ----------------------------------------------

STEPS_ON_ONE_DEVICE_OR_TWO_WORKERS = """
import json, os, sys
sys.path.insert(0, ROOT_PATH)
os.environ["KERAS_BACKEND"] = "tensorflow"
import pipeline  # noqa: F401
import numpy as np
import keras
from pipeline.training import distribute
from pipeline.training.augment import Batches

strategy, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
keras.utils.set_random_seed(0)
place = distribute.placement(strategy, batch_size=16)
with place.scope:
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2)])
    rows = keras.metrics.MeanMetricWrapper(lambda y, _: keras.ops.full(keras.ops.shape(y)[:1], keras.ops.shape(y)[0]),
                                           name="rows")   # how many rows each replica's step took
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae", rows])
rng = np.random.default_rng(1)
x, y = rng.normal(size=(n, 6)).astype("float32"), rng.normal(size=(n, 2)).astype("float32")
weights = rng.uniform(0.2, 2.0, size=n).astype("float32")   # the weighted metrics must add up across workers
batches = Batches(x, y, batch_size=16, seed=0, sample_weight=weights, shard=(place.worker, place.workers))
history = place.fit(model, batches, epochs=3, verbose=0)
np.savez(out + ".npz", *model.get_weights())
with open(out + ".json", "w") as file:
    json.dump({"history": history.history, "replicas": place.replicas, "worker": place.worker,
               "workers": place.workers}, file)
"""


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def cluster_environment(ports, index):
    config = {"cluster": {"worker": [f"localhost:{port}" for port in ports]}, "task": {"type": "worker", "index": index}}
    return {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CONFIG": json.dumps(config)}


def start_workers(command, workers=2):
    """Starts `command(i)` for i in range(workers) as the workers of one cluster on loopback ports."""
    ports = free_ports(workers)
    return [subprocess.Popen(command(i), cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=cluster_environment(ports, i)) for i in range(workers)]


def finished(processes, timeout=600):
    """The processes' CompletedProcess results once all have ended (none is left running)."""
    try:
        outputs = [process.communicate(timeout=timeout) for process in processes]
    finally:
        for process in processes:
            process.kill()
    return [subprocess.CompletedProcess(p.args, p.returncode, out, err) for p, (out, err) in zip(processes, outputs)]


def run_workers(command, workers=2):
    return finished(start_workers(command, workers))


@in_subprocesses
def test_two_workers_train_like_one_device_with_the_same_global_batch(tmp_path):
    script = STEPS_ON_ONE_DEVICE_OR_TWO_WORKERS.replace("ROOT_PATH", repr(str(ROOT)))
    run_script(STEPS_ON_ONE_DEVICE_OR_TWO_WORKERS, "none", str(tmp_path / "single"), "64")
    for done in run_workers(lambda i: [sys.executable, "-c", script, "multiworker", str(tmp_path / f"worker{i}"), "64"]):
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]

    def weights(name):
        with np.load(tmp_path / f"{name}.npz") as saved:
            return [saved[f"arr_{i}"] for i in range(len(saved.files))]

    single, first, second = (weights(name) for name in ("single", "worker0", "worker1"))
    assert all(np.array_equal(a, b) for a, b in zip(first, second))   # one all-reduced update on both
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(single, first)) < 1e-5   # and it is one device's
    logs = [json.loads((tmp_path / f"{name}.json").read_text()) for name in ("single", "worker0", "worker1")]
    assert [(log["worker"], log["workers"], log["replicas"]) for log in logs] == [(0, 1, 1), (0, 2, 2), (1, 2, 2)]
    for key in ("loss", "mae"):   # each epoch's logs average both workers' halves
        np.testing.assert_allclose(logs[1]["history"][key], logs[0]["history"][key], rtol=1e-5)
        assert logs[1]["history"][key] == logs[2]["history"][key]
    assert [log["history"]["rows"] for log in logs] == [[16] * 3, [8] * 3, [8] * 3]   # each worker its half


@in_subprocesses
def test_workers_with_different_data_stop_with_one_clear_error(tmp_path):
    script = STEPS_ON_ONE_DEVICE_OR_TWO_WORKERS.replace("ROOT_PATH", repr(str(ROOT)))
    results = run_workers(lambda i: [sys.executable, "-c", script, "multiworker", str(tmp_path / f"worker{i}"),
                                     ("64", "48")[i]])
    for done in results:   # both, rather than one waiting for the other forever
        assert done.returncode != 0
        assert "the workers disagree on steps per epoch (4, 3)" in done.stderr, done.stderr[-3000:]


@in_subprocesses
def test_train_command_runs_on_two_workers_that_end_with_the_same_run(tmp_path):
    roots = [tmp_path / f"worker{i}" for i in range(2)]
    for root in roots:
        raw = root / "data" / "raw" / KEYPOINTS.slug
        raw.mkdir(parents=True)
        sample.write_sample(KEYPOINTS, raw, seed=3, sizes=sample.SampleSizes(keypoints_train=24, keypoints_test=4))
    results = run_workers(lambda i: [sys.executable, "run.py", "--root", str(roots[i]), "--quiet", "all", "--task",
                                     "keypoints", "--model", "kaggle_cnn", "--epochs", "2", "--batch-size", "8",
                                     "--strategy", "multiworker"])
    for done in results:
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    run_dirs = []
    for root in roots:
        runs = root / "data" / "runs" / KEYPOINTS.slug
        run_dirs.append(runs / (runs / "latest").read_text().strip())
    metrics = json.loads((run_dirs[0] / "metrics.json").read_text())
    assert (metrics["workers"], metrics["replicas"]) == (2, 2)
    assert json.loads((run_dirs[0] / "params.json").read_text())["strategy"] == "multiworker"
    assert (run_dirs[0] / "history.csv").read_text() == (run_dirs[1] / "history.csv").read_text()
    scores = [json.loads((run_dir / "metrics.json").read_text()) for run_dir in run_dirs]
    assert [{k: v for k, v in s.items() if k != "train_seconds"} for s in scores] == [
        {k: v for k, v in scores[0].items() if k != "train_seconds"}] * 2   # the same training, to the last digit
    submissions = [sorted((root / "submissions").glob("*.csv")) for root in roots]
    assert submissions[0][0].read_text() == submissions[1][0].read_text()


@in_subprocesses
def test_a_signal_to_one_worker_stops_all_and_resume_ends_like_an_unbroken_run(tmp_path):
    train = ["train", "--task", "expressions", "--model", "lenet7", "--epochs", "6", "--batch-size", "16",
             "--strategy", "multiworker"]

    def cluster_roots(name):
        roots = [tmp_path / f"{name}{i}" for i in range(2)]
        for root in roots:
            for stage in (["download", "--sample-size", "0.06"], ["clean"], ["scale"]):
                done = subprocess.run([sys.executable, "run.py", "--root", str(root), "--quiet", *stage, "--task",
                                       "expressions"], cwd=ROOT, capture_output=True, text=True, timeout=600)
                assert done.returncode == 0, done.stderr[-2000:]
        return roots

    def command(roots, *extra):
        return lambda i: [sys.executable, "run.py", "--root", str(roots[i]), *train, *extra]

    def history(root):   # {column: values} (a resumed run's history.csv orders its columns otherwise)
        runs = root / "data" / "runs" / EXPRESSIONS.slug
        with open(runs / (runs / "latest").read_text().strip() / "history.csv") as file:
            rows = list(csv.DictReader(file))
        return {column: [row[column] for row in rows] for column in rows[0]}

    unbroken = cluster_roots("unbroken")
    assert all(done.returncode == 0 for done in run_workers(command(unbroken)))

    broken = cluster_roots("broken")
    processes = start_workers(command(broken))
    backups = broken[1] / "data" / "runs" / EXPRESSIONS.slug
    deadline = time.monotonic() + 300
    while not list(backups.glob("*/backup/state.json")):   # worker 1 has saved its first epoch
        assert all(p.poll() is None for p in processes) and time.monotonic() < deadline, "ended before the signal"
        time.sleep(0.05)
    processes[1].send_signal(signal.SIGINT)                  # to worker 1 only
    stopped = finished(processes, timeout=300)
    assert [done.returncode for done in stopped] == [128 + signal.SIGTERM, 128 + signal.SIGINT], stopped[0].stderr[-2000:]
    states = [json.loads(next((root / "data" / "runs" / EXPRESSIONS.slug).glob("*/backup/state.json")).read_text())
              for root in broken]
    assert states[0]["epoch"] == states[1]["epoch"] < 6     # both stopped after the same epoch

    resumed = run_workers(command(broken, "--resume"))
    assert all(done.returncode == 0 for done in resumed), resumed[0].stderr[-2000:]
    assert f"after epoch {states[0]['epoch']}" in resumed[0].stdout
    assert history(broken[0]) == history(broken[1]) == history(unbroken[0])


def test_the_cluster_comes_from_tf_config(monkeypatch):
    cluster = {"chief": ["a:1"], "worker": ["b:1", "c:1"]}
    for task, expected in ((("chief", 0), (0, 3)), (("worker", 0), (1, 3)), (("worker", 1), (2, 3))):
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": task[0], "index": task[1]}}))
        assert distribute.cluster_from_environment() == expected


@pytest.mark.parametrize("config, message", [
    (None, "reads the cluster from TF_CONFIG, which is not set"),
    ("{worker: [a]}", "TF_CONFIG is not a cluster description"),
    ('{"cluster": {"worker": ["a:1"]}}', "TF_CONFIG is not a cluster description"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}', "task worker 1 is not in its cluster"),
])
def test_an_unusable_tf_config_is_one_clear_error(monkeypatch, config, message):
    if config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", config)
    with pytest.raises(PipelineError, match=message):
        distribute.cluster_from_environment()


def test_multiworker_needs_tensorflow(monkeypatch):
    keras = pytest.importorskip("keras")
    monkeypatch.setattr(keras.config, "backend", lambda: "jax")
    with pytest.raises(PipelineError, match="multiworker needs the TensorFlow backend, not jax"):
        distribute.placement("multiworker", 8)
