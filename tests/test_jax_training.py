"""`dropact train` on the JAX backend: resume, export, keras.distribution data parallelism.

Every run is a fresh process with KERAS_BACKEND=jax (the test process keeps
its own backend): JAX reads XLA_FLAGS and the KERAS_DISTRIBUTION_* variables
when it starts. Runs use the offline `digits` dataset and a few steps.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import warnings

import numpy as np
import pytest

from keras_dropact.training import run_dir as rd
from tests.conftest import launch
from tests.conftest import tensorflow_only

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "jax_worker.py")
TIMEOUT = 180  # seconds for any one launch; a hung process fails the test.
QUICK = ["--model", "simple-cnn", "--dataset", "digits", "--epochs", "2", "--steps-per-epoch", "4", "--batch-size", "32"]


def _env(backend="jax", **extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND=backend, **extra)
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
    for name in ("TF_CONFIG", "XLA_FLAGS", "KERAS_DISTRIBUTION_JOB_ADDRESSES",
                 "KERAS_DISTRIBUTION_NUM_PROCESSES", "KERAS_DISTRIBUTION_PROCESS_ID"):
        if name not in extra:
            env.pop(name, None)
    return env


def _launch(commands):
    return launch(commands, TIMEOUT, cwd=ROOT)


def _dropact(*args):
    return [sys.executable, "-m", "keras_dropact.cli", *args]


def test_backend_and_strategy_mismatches_name_the_alternative(capsys, tmp_path):
    import keras

    from keras_dropact import cli
    from keras_dropact.training import runtime

    other = "jax" if keras.backend.backend() == "tensorflow" else "tensorflow"
    # In a process that already loaded Keras, --backend cannot switch: a clear error.
    assert cli.main(["train", "--backend", other, "--run-dir", str(tmp_path / "r")]) == 2
    assert f"KERAS_BACKEND={other}" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "r")
    if keras.backend.backend() == "tensorflow":
        with pytest.raises(ValueError, match="needs the JAX backend.*mirrored or multiworker"):
            runtime.make("data-parallel")


@tensorflow_only
def test_multi_worker_patch_is_tied_to_tested_keras_versions(monkeypatch):
    import keras

    from keras_dropact.training import tf_runtime

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    monkeypatch.setattr(keras, "__version__", "3.99.0")
    with pytest.warns(UserWarning, match="tested with Keras 3.15.x, not 3.99.0.*JAX backend"):
        tf_runtime._check_patchable_keras(model)
    monkeypatch.setattr(keras, "__version__", "3.15.1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tf_runtime._check_patchable_keras(model)
    with pytest.raises(RuntimeError, match="no _maybe_symbolic_build.*data-parallel"):
        tf_runtime._check_patchable_keras(object())  # A Keras without the patched methods.


def test_jax_train_resumes_after_sigkill_and_exports(tmp_path):
    run = str(tmp_path / "killed")
    # --backend jax from a TensorFlow environment: the CLI restarts itself on JAX.
    argv = _dropact("train", "--backend", "jax", "--model", "simple-cnn", "--dataset", "digits",
                    "--epochs", "4", "--steps-per-epoch", "40", "--batch-size", "8",
                    "--backup-every", "5", "--run-dir", run)
    # Killed (SIGKILL, by the fault-injection hook) right after optimizer
    # step 50: epoch 0 (40 steps) finished, epoch 1 half done, its last
    # backup at step 45.
    process = subprocess.run(argv, env=_env("tensorflow", DROPACT_FAULT="step:50"), cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=TIMEOUT)
    assert process.returncode == -signal.SIGKILL
    assert not os.path.exists(os.path.join(run, rd.RESULTS))
    killed_in = 1

    _launch([(_dropact("train", "--run-dir", run, "--resume"), _env("jax"))])
    with open(os.path.join(run, rd.RESULTS)) as f:
        results = json.load(f)
    assert results["versions"]["keras_backend"] == "jax" and "jax" in results["versions"]
    assert results["distribution"] == {"strategy": "none", "replicas": 1, "processes": 1}
    assert [row["epoch"] for row in results["history"]] == [0, 1, 2, 3]
    assert results["optimizer_steps"] == 4 * 40  # The interrupted epoch was not restarted.
    # Every epoch was logged exactly once: no finished epoch ran again.
    with open(os.path.join(run, rd.LOG)) as f:
        logged = [line.split(",")[0] for line in f.read().split()[1:]]
    assert logged == ["0", "1", "2", "3"], f"killed in epoch {killed_in}, log {logged}"

    # SavedModel export from JAX (jax2tf), checked against model.predict by `export`.
    root = str(tmp_path / "exports")
    out = _launch([(_dropact("export", run, "--name", "net", "--root", root), _env("jax"))])[0]
    exported = json.loads(out[out.index("{"):])
    assert exported["max_abs_difference"] <= 1e-5
    # The same export served by TensorFlow equals the JAX-trained model run by Keras here.
    from keras_dropact.training import artifacts
    from keras_dropact.training.export import run_exported

    x = np.random.default_rng(1).uniform(0, 1, (5, 8, 8, 1)).astype("float32")
    model = artifacts.load_model(run)
    served = run_exported(exported["path"], "saved_model", x, signature="serve_normalized")
    np.testing.assert_allclose(served["logits"], model.predict(x, verbose=0), atol=1e-5)


def test_data_parallel_on_two_devices_equals_one_device(tmp_path):
    out = str(tmp_path / "devices.json")
    _launch([(
        [sys.executable, WORKER, "devices", out, str(tmp_path)],
        _env("jax", XLA_FLAGS="--xla_force_host_platform_device_count=2"),
    )])
    with open(out) as f:
        report = json.load(f)
    one, two = report["none"], report["data-parallel"]
    assert one["distribution"]["replicas"] == 1 and two["distribution"]["replicas"] == 2
    # Same global batches, seed and masks: the same training, up to float summation order.
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)
    assert two["test_loss"] == pytest.approx(one["test_loss"], rel=1e-5)
    assert two["test_error"] == pytest.approx(one["test_error"], abs=1e-9)
    # A global batch that does not split over the devices fails before anything is written.
    assert "--batch-size 33" in report["odd_batch_error"] and "multiple of 2" in report["odd_batch_error"]
    assert not report["odd_batch_run_dir_exists"]
    # The two devices drew different masks for their halves of the batch, and
    # together exactly the one-device draw: one mask per example.
    first, second = (np.array(mask) for mask in report["mask_shards"])
    assert len(set(report["mask_shard_devices"])) == 2 and first.shape == second.shape == (4, 64)
    assert 0.3 < first.mean() < 0.7 and 0.3 < second.mean() < 0.7  # p = 0.5
    assert (first != second).mean() > 0.3
    np.testing.assert_array_equal(np.concatenate([first, second]), np.array(report["mask_one_device"]))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_data_parallel_on_loopback(tmp_path):
    run = str(tmp_path / "two-processes")
    address = f"127.0.0.1:{_free_port()}"
    commands = []
    for process_id in range(2):
        out = str(tmp_path / f"process{process_id}.json")
        argv = [sys.executable, WORKER, "cli", out, "--", "train", *QUICK, "--strategy", "data-parallel",
                "--run-dir", run, "--backup-every", "2"]
        env = _env("jax", KERAS_DISTRIBUTION_JOB_ADDRESSES=address,
                   KERAS_DISTRIBUTION_NUM_PROCESSES="2", KERAS_DISTRIBUTION_PROCESS_ID=str(process_id))
        commands.append((argv, env))
    outputs = _launch(commands)
    reports = []
    for process_id in range(2):
        with open(tmp_path / f"process{process_id}.json") as f:
            reports.append(json.load(f))
    assert [report["code"] for report in reports] == [0, 0]
    # One run directory, written by process 0; process 1 wrote a temporary one it removed.
    assert sorted(os.listdir(tmp_path)) == ["process0.json", "process1.json", "two-processes"]
    with open(os.path.join(run, rd.RESULTS)) as f:
        results = json.load(f)
    assert results["distribution"] == {"strategy": "data-parallel", "replicas": 2, "processes": 2}
    assert results["epochs_completed"] == 2 and np.isfinite(results["test_loss"])
    # Both processes report the same global test error and loss.
    summaries = [re.findall(r"test error [0-9.]+%, test loss [0-9.]+", output) for output in outputs]
    assert len(summaries[0]) == 1 and summaries[0] == summaries[1]
    # Each read its own half of the examples: 16 of each 32-example global batch.
    first, second = (report["examples"] for report in reports)
    assert len(first) >= 2 * 4 * 16 and len(second) >= 2 * 4 * 16
    assert not set(first) & set(second)
