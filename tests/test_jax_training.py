"""`dropact train` on the JAX backend: resume, export, keras.distribution data parallelism.

Every run is a fresh process with KERAS_BACKEND=jax (the test process keeps
its own backend): JAX reads XLA_FLAGS and the KERAS_DISTRIBUTION_* variables
when it starts. Runs use the offline `digits` dataset and a few steps.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import pytest

from tests.conftest import assert_same_training
from tests.conftest import assert_same_weights
from tests.conftest import examples_read
from tests.conftest import free_port
from tests.conftest import launch
from tests.conftest import saved_weights
from tests.conftest import split_fingerprints
from tests.conftest import tensorflow_only

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "jax_worker.py")
PROCESS = os.path.join(ROOT, "tests", "dist_worker.py")  # One process of a multi-process run.
TIMEOUT = 180  # seconds for any one launch; a hung process fails the test.
# `dropact train` on JAX keeps compiled programs here (keras_dropact.jax_config).
JAX_CACHE = os.path.join(tempfile.gettempdir(), f"keras-dropact-tests-jax-cache-{os.getuid()}")


def _env(backend="jax", **extra):
    extra.setdefault("JAX_COMPILATION_CACHE_DIR", JAX_CACHE)  # Not the user's ~/.cache.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND=backend, **extra)
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
    for name in ("TF_CONFIG", "XLA_FLAGS", "KERAS_DISTRIBUTION_JOB_ADDRESSES",
                 "KERAS_DISTRIBUTION_NUM_PROCESSES", "KERAS_DISTRIBUTION_PROCESS_ID"):
        if name not in extra:
            env.pop(name, None)
    return env


def _results(run_dir):
    with open(os.path.join(run_dir, "results.json")) as f:
        return json.load(f)


def _launch(commands):
    return launch(commands, TIMEOUT, cwd=ROOT)


def _dropact(*args):
    return [sys.executable, "-m", "keras_dropact.cli", *args]


def test_backend_and_strategy_mismatches_name_the_alternative(capsys, tmp_path):
    import keras

    from keras_dropact import cli

    other = "jax" if keras.backend.backend() == "tensorflow" else "tensorflow"
    # In a process that already loaded Keras, --backend cannot switch: a clear error.
    assert cli.main(["train", "--backend", other, "--run-dir", str(tmp_path / "r")]) == 2
    assert f"KERAS_BACKEND={other}" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "r")
    if keras.backend.backend() == "tensorflow":
        assert cli.main(["train", "--strategy", "data-parallel", "--run-dir", str(tmp_path / "r")]) == 2
        assert re.search("needs the JAX backend.*mirrored or multiworker", capsys.readouterr().err)
        assert not os.path.exists(tmp_path / "r")


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


def _assert_the_run_keeps_its_backend(run, capsys):
    """The JAX run records its backend (issue 25: the printed resume command,
    run where KERAS_BACKEND is tensorflow, resumed it on TensorFlow: another
    test loss, exit 0). --backend cannot change it; a process that has
    loaded Keras on TensorFlow cannot switch (one line each)."""
    import keras

    from keras_dropact import cli

    with open(os.path.join(run, "config.json")) as f:
        assert json.load(f)["backend"] == "jax"
    if keras.backend.backend() == "tensorflow":
        capsys.readouterr()
        assert cli.main(["train", "--resume", "--run-dir", run, "--backend", "tensorflow"]) == 2
        assert "--backend 'tensorflow' (saved: 'jax')" in capsys.readouterr().err
        assert cli.main(["train", "--resume", "--run-dir", run]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"dropact train: error: {run} trains on jax (its config.json): Keras "
                              "is already loaded with the 'tensorflow' backend") and err.count("\n") == 1


def test_jax_train_resumes_after_sigkill_bit_for_bit_and_exports(tmp_path, capsys):
    run, reference = str(tmp_path / "killed"), str(tmp_path / "reference")
    cache = str(tmp_path / "jax-cache")
    flags = ["--model", "simple-cnn", "--dataset", "digits", "--epochs", "3", "--steps-per-epoch", "20",
             "--batch-size", "8", "--backup-every", "5"]
    # Killed (SIGKILL, by the fault-injection hook) right after optimizer
    # step 27: epoch 0 (20 steps) finished, epoch 1 at its step 7, its last
    # backup at step 25. --backend jax from a TensorFlow environment: the
    # CLI restarts itself on JAX. The uninterrupted run trains meanwhile.
    killed = subprocess.Popen(
        _dropact("train", "--backend", "jax", *flags, "--run-dir", run),
        env=_env("tensorflow", DROPACT_FAULT="step:27", JAX_COMPILATION_CACHE_DIR=cache), cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        _launch([(_dropact("train", *flags, "--run-dir", reference),
                  _env("jax", JAX_COMPILATION_CACHE_DIR=cache))])
        assert killed.wait(timeout=TIMEOUT) == -signal.SIGKILL
    finally:
        if killed.poll() is None:
            os.killpg(killed.pid, signal.SIGKILL)
            killed.wait()
    assert not os.path.exists(os.path.join(run, "results.json"))
    # dropact train on JAX stores its compiled programs for the next run.
    assert os.listdir(cache)
    _assert_the_run_keeps_its_backend(run, capsys)

    # The resume, as printed, where KERAS_BACKEND is tensorflow, and
    # meanwhile a SavedModel export of the uninterrupted run from JAX
    # (jax2tf), checked against model.predict by `export`.
    root = str(tmp_path / "exports")
    _, out = _launch([(_dropact("train", "--run-dir", run, "--resume"), _env("tensorflow")),
                      (_dropact("export", reference, "--name", "net", "--root", root), _env("jax"))])
    results, expected = _results(run), _results(reference)
    assert results["versions"]["keras_backend"] == "jax" and "jax" in results["versions"]
    assert results["distribution"] == {"strategy": "none", "replicas": 1, "processes": 1}
    assert results["optimizer_steps"] == 3 * 20 and results["processes"] == 2
    # Every epoch was logged exactly once: no finished epoch ran again.
    with open(os.path.join(run, "log.csv")) as f:
        logged = [line.split(",")[0] for line in f.read().split()[1:]]
    assert logged == ["0", "1", "2"]
    # The resumed run IS the uninterrupted one, bit for bit on JAX's CPU
    # (without --deterministic): optimizer steps, every logged value of
    # every epoch (the interrupted epoch's averages too), test loss and
    # error, and the final weights.
    assert_same_training(results, expected, tolerance=0.0)
    assert_same_weights(saved_weights(run), saved_weights(reference))

    exported = json.loads(out[out.index("{"):])
    assert exported["max_abs_difference"] <= 1e-5
    # The same export served by TensorFlow equals the JAX-trained model run by Keras here.
    from keras_dropact.training import artifacts
    from keras_dropact.training.export import run_exported

    x = np.random.default_rng(1).uniform(0, 1, (5, 8, 8, 1)).astype("float32")
    model = artifacts.load_model(reference)
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


def test_two_processes_read_disjoint_training_shards_on_loopback(tmp_path):
    # One whole epoch of digits (1437 training images) at a global batch of
    # 32 on 2 processes: each process batches 16 of its own shard.
    run = str(tmp_path / "two-processes")
    address = f"127.0.0.1:{free_port()}"
    commands = []
    for process_id in range(2):
        out = str(tmp_path / f"process{process_id}.json")
        argv = [sys.executable, PROCESS, "cli", out, "0", "--", "train", "--model", "simple-cnn", "--dataset",
                "digits", "--epochs", "1", "--batch-size", "32", "--strategy", "data-parallel",
                "--run-dir", run, "--backup-every", "20"]
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
    results = _results(run)
    assert results["distribution"] == {"strategy": "data-parallel", "replicas": 2, "processes": 2}
    # An epoch is floor(1437 / 32) = 44 global steps: every batch full.
    steps, per_process = 1437 // 32, 16
    assert results["epochs_completed"] == 1 and results["optimizer_steps"] == steps
    # Both processes report the same global test error and loss.
    summaries = [re.findall(r"test error [0-9.]+%, test loss [0-9.]+", output) for output in outputs]
    assert len(summaries[0]) == 1 and summaries[0] == summaries[1]

    # The training stream of each process: one stream, from step 0.
    split = split_fingerprints("digits")
    assert len(set(split)) == len(split) == 1437  # Every image of the split is distinct.
    epochs = []
    for process_id, report in enumerate(reports):
        (stream,) = report["streams"]
        assert stream["start_step"] == 0
        epoch = examples_read(stream, steps * per_process)
        # Process i reads shard i of the split (examples i, i + 2, ...), each
        # example at most once per epoch, shuffled: all of its shard but the
        # remainder that does not fill a batch of 16 (719 - 704 = 15, 718 - 704 = 14).
        shard = split[process_id::2]
        assert len(set(epoch)) == len(epoch) and set(epoch) <= set(shard)
        assert len(shard) - len(epoch) == len(shard) % per_process
        assert epoch != [example for example in shard if example in set(epoch)]  # Shuffled.
        epochs.append(epoch)
    # The two shards are disjoint: together the processes read 44 x 32 = 1408
    # distinct examples, as one process does in an epoch of 44 full global
    # batches; the 29 left out are the two shards' remainders.
    assert not set(epochs[0]) & set(epochs[1])
    assert len(set(epochs[0]) | set(epochs[1])) == steps * 32 == 1408
