"""tf.distribute training: strategies, sharded input, replica masks, 2 workers.

The runs themselves are tests/dist_worker.py in fresh processes: logical CPU
devices and TF_CONFIG must be set before TensorFlow starts.
"""

import json
import os
import sys

import numpy as np
import pytest

from conftest import launch
from conftest import tensorflow_only
from keras_dropact.training import runtime
from keras_dropact.training.tf_runtime import local_tf_configs

WORKER = os.path.join(os.path.dirname(__file__), "dist_worker.py")
TIMEOUT = 120  # seconds for any one launch; a hung worker fails the test.


def _env(tf_config=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), env.get("PYTHONPATH", "")])
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def _launch(argv_list, envs):
    return launch(list(zip(argv_list, envs)), TIMEOUT)


def _two_workers(run_dir, epochs, out_prefix):
    tf_configs = local_tf_configs(2)
    argv = [[sys.executable, WORKER, "multiworker", str(run_dir), str(epochs), f"{out_prefix}{i}"]
            for i in range(2)]
    envs = [_env(json.loads(tf_config)) for tf_config in tf_configs]
    _launch(argv, envs)
    reports = []
    for i in range(2):
        with open(f"{out_prefix}{i}.json") as f:
            reports.append(json.load(f))
    return reports, [np.load(f"{out_prefix}{i}.npz") for i in range(2)]


def _weights(npz):
    return [npz[f"arr_{i}"] for i in range(len(npz.files) - 1)]


def test_unknown_strategy_lists_the_valid_ones():
    with pytest.raises(ValueError, match="'ring'.*auto, none, mirrored, multiworker"):
        runtime.make("ring")


@tensorflow_only
def test_auto_without_cluster_or_gpus_is_the_default_strategy(monkeypatch):
    import tensorflow as tf

    monkeypatch.delenv("TF_CONFIG", raising=False)
    if tf.config.list_logical_devices("GPU"):
        pytest.skip("GPUs visible")
    auto = runtime.make("auto")
    assert auto.strategy is tf.distribute.get_strategy()
    assert auto.is_chief
    assert auto.steps(100, 16) is None


@tensorflow_only
def test_mirrored_two_devices_matches_single_device(tmp_path):
    # Same global batch (16 = 2 x 8) and seed, p=1 (no masks): the same loss
    # trajectory and weights up to float summation order.
    _launch([[sys.executable, WORKER, "mirrored", str(tmp_path / "m"), "3", str(tmp_path / "m"), "2"]],
            [_env()])
    from dist_worker import run

    single = run("none", str(tmp_path / "s"), 3, str(tmp_path / "s"))
    with open(tmp_path / "m.json") as f:
        mirrored = json.load(f)
    assert mirrored["replicas"] == 2 and single["replicas"] == 1
    assert len(mirrored["losses"]) == 3
    np.testing.assert_allclose(mirrored["losses"], single["losses"], rtol=1e-5, atol=1e-6)
    for a, b in zip(_weights(np.load(tmp_path / "m.npz")), _weights(np.load(tmp_path / "s.npz"))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@tensorflow_only
@pytest.mark.slow
def test_two_workers_train_like_one_device_and_resume(tmp_path):
    from dist_worker import run

    run_dir = tmp_path / "run"
    reports, weights = _two_workers(run_dir, 2, str(tmp_path / "a"))
    chief, other = reports
    assert chief["chief"] and not other["chief"]
    assert chief["replicas"] == other["replicas"] == 2
    # Both workers hold identical weights; each drew its own masks.
    for a, b in zip(_weights(weights[0]), _weights(weights[1])):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(weights[0]["mask"], weights[1]["mask"])
    assert abs(weights[0]["mask"].mean() - 0.5) < 0.05
    # Only the chief wrote the run directory; the other's temporary one is gone.
    assert chief["write_dir"] == str(run_dir)
    assert sorted(os.listdir(run_dir)) == ["backup", "checkpoint.keras", "log.csv"]
    assert not os.path.exists(other["write_dir"])

    # Resume to 3 epochs from the chief's backup: the run continues where it
    # stopped and ends where an uninterrupted single-device run ends.
    reports, weights = _two_workers(run_dir, 3, str(tmp_path / "b"))
    single = run("none", str(tmp_path / "single"), 3, str(tmp_path / "single"))
    assert len(reports[0]["losses"]) == 3  # 2 rows before, 1 appended
    np.testing.assert_allclose(reports[0]["losses"], single["losses"], rtol=1e-5, atol=1e-6)
    for a, b, c in zip(_weights(weights[0]), _weights(weights[1]), _weights(np.load(tmp_path / "single.npz"))):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)


@tensorflow_only
@pytest.mark.slow
def test_dropact_train_with_two_workers_end_to_end(tmp_path):
    # The real command, on the offline digits data, on two loopback workers.
    run_dir = tmp_path / "run"
    argv = [sys.executable, "-m", "keras_dropact.cli", "train", "--model", "simple-cnn", "--dataset", "digits",
            "--epochs", "2", "--batch-size", "32", "--steps-per-epoch", "3", "--strategy", "multiworker",
            "--run-dir", str(run_dir)]
    tf_configs = local_tf_configs(2)
    _launch([argv, argv], [_env(json.loads(tf_config)) for tf_config in tf_configs])
    with open(run_dir / "results.json") as f:
        results = json.load(f)
    assert results["epochs_completed"] == 2 and [row["epoch"] for row in results["history"]] == [0, 1]
    assert results["config"]["strategy"] == "multiworker"
    assert 0.0 <= results["test_error"] <= 1.0
    # Only the chief's run directory exists under tmp_path.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
