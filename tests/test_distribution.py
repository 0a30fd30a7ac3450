"""tf.distribute training through the project's own path: `dropact train`.

Every distributed run is `dropact train` in fresh processes
(tests/dist_worker.py: logical CPU devices and TF_CONFIG must be set before
TensorFlow starts), with the project's callbacks, backups and run directory.
The runs train MNIST-1D's small MLP (no BatchNorm) on the offline `mnist1d`
data for a few steps.
"""

import json
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import assert_same_training
from conftest import assert_same_weights
from conftest import examples_read
from conftest import free_port
from conftest import launch
from conftest import saved_weights
from conftest import split_fingerprints
from conftest import tensorflow_only

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "dist_worker.py")
TIMEOUT = 150  # seconds for any one launch; a hung worker fails the test.
MLP = ["--model", "mnist1d-mlp", "--dataset", "mnist1d", "--batch-size", "32"]


def _env(tf_config=None, tmp=None, **extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow", **extra)
    env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    if tmp is not None:
        env["TMPDIR"] = str(tmp)  # Where the non-chief workers' temporary run directories go.
    return env


def _tf_configs(num_workers):
    """TF_CONFIG of each worker of a cluster on free loopback ports."""
    cluster = {"worker": [f"127.0.0.1:{free_port()}" for _ in range(num_workers)]}
    return [{"cluster": cluster, "task": {"type": "worker", "index": i}} for i in range(num_workers)]


def _worker(out, *args, logical_cpus=0):
    return [sys.executable, WORKER, "cli", str(out), str(logical_cpus), "--", *args]


def _report(out):
    with open(out) as f:
        return json.load(f)


def _results(run_dir):
    with open(os.path.join(run_dir, "results.json")) as f:
        return json.load(f)


def _temporary_run_dirs(tmp):
    """The temporary run directories non-chief workers left in their TMPDIR."""
    return [name for name in os.listdir(tmp) if name.startswith("dropact-")]


def _summary(output):
    """The summary line `dropact train` prints: test error and loss."""
    return re.findall(r"test error [0-9.]+%, test loss [0-9.]+", output)


def test_unknown_strategy_lists_the_valid_ones():
    from keras_dropact.training.config import TrainConfig

    with pytest.raises(ValueError, match="'ring'.*auto, none, mirrored, multiworker"):
        TrainConfig(strategy="ring")


@tensorflow_only
@pytest.mark.slow
def test_auto_without_cluster_or_gpus_trains_on_one_device(monkeypatch, tmp_path):
    import tensorflow as tf

    from keras_dropact.training.config import TrainConfig
    from keras_dropact.training.train import train

    monkeypatch.delenv("TF_CONFIG", raising=False)
    if tf.config.list_logical_devices("GPU"):
        pytest.skip("GPUs visible")
    results = train(TrainConfig(model="mnist1d-mlp", dataset="mnist1d", epochs=1, steps_per_epoch=2,
                                batch_size=32, light=True, run_dir=str(tmp_path / "run")), verbose=0)
    assert results["config"]["strategy"] == "auto"
    assert results["distribution"] == {"strategy": "none", "replicas": 1, "processes": 1}
    assert results["optimizer_steps"] == 2


@tensorflow_only
@pytest.mark.slow
def test_mirrored_two_devices_matches_single_device(tmp_path):
    # Same global batch (32 = 2 x 16): the one pipeline's consecutive batches
    # of 16 go to the two replicas, so each step sees the one-device batch.
    # ReLU (the replicas' Drop-Activation masks differ by design) and no
    # BatchNorm: the same losses and weights up to float summation order.
    flags = ["train", *MLP, "--activation", "relu", "--epochs", "2", "--steps-per-epoch", "6"]
    mirrored = [*flags, "--strategy", "mirrored", "--run-dir", str(tmp_path / "m")]
    single = [*flags, "--strategy", "none", "--run-dir", str(tmp_path / "s")]
    launch([(_worker(tmp_path / "m.json", *mirrored, logical_cpus=2), _env()),
            (_worker(tmp_path / "s.json", *single), _env())], TIMEOUT)
    mirrored, single = _results(tmp_path / "m"), _results(tmp_path / "s")
    assert mirrored["distribution"] == {"strategy": "mirrored", "replicas": 2, "processes": 1}
    assert single["distribution"] == {"strategy": "none", "replicas": 1, "processes": 1}
    assert_same_training(mirrored, single, tolerance=1e-5)
    assert_same_weights(saved_weights(tmp_path / "m"), saved_weights(tmp_path / "s"), rtol=1e-5, atol=1e-6)


@tensorflow_only
@pytest.mark.slow
def test_mirrored_evaluation_takes_any_split_size(tmp_path):
    # digits' 360 test examples in global batches of 32 over 2 replicas:
    # the last step gives one replica 8 examples and the other none. A
    # BatchNorm network (simple-cnn) then failed with "Incompatible shapes:
    # [0,4,4,32] vs. [64]" (a Conv2D on 0 examples). The evaluation must
    # cover all 360 examples: one device evaluating the saved model counts
    # the same errors. The losses agree to 1e-3 only: Keras' BatchNormalization keeps each
    # replica's moving statistics (measured: 5e-4 apart here), the saved
    # model holds one replica's.
    from keras_dropact.training.evaluate import evaluate

    run = tmp_path / "bn"
    argv = ["train", "--model", "simple-cnn", "--dataset", "digits", "--batch-size", "32",
            "--epochs", "1", "--steps-per-epoch", "3", "--strategy", "mirrored", "--run-dir", str(run)]
    launch([(_worker(tmp_path / "bn.json", *argv, logical_cpus=2), _env())], TIMEOUT)
    results = _results(run)
    assert results["distribution"] == {"strategy": "mirrored", "replicas": 2, "processes": 1}
    assert np.isfinite(results["history"][0]["val_loss"])
    single = evaluate(str(run), batch_size=32)
    assert single["examples"] == 360
    assert results["test_error"] == pytest.approx(single["test_error"], abs=1e-9)
    assert results["test_loss"] == pytest.approx(single["test_loss"], rel=1e-3)


@tensorflow_only
@pytest.mark.slow
def test_each_worker_draws_its_own_masks(tmp_path):
    outs = [tmp_path / f"masks{i}.json" for i in range(2)]
    launch([([sys.executable, WORKER, "masks", str(out)], _env(tf_config))
            for out, tf_config in zip(outs, _tf_configs(2))], TIMEOUT)
    first, second = (np.array(_report(out)["mask"]) for out in outs)
    assert first.shape == second.shape == (32, 32)
    assert abs(first.mean() - 0.5) < 0.05 and abs(second.mean() - 0.5) < 0.05  # p = 0.5
    assert (first != second).mean() > 0.4  # Independent draws differ in half the places.


# Two workers, 3 epochs of 8 steps of 32 examples (16 per worker), a backup
# every 3 optimizer steps. The killed run loses its chief (worker 0) right
# after optimizer step 13: epoch 1 at its step 5, the last backup at step 12.
STEPS_PER_EPOCH, EPOCHS, KILLED_AT, BACKED_UP_AT = 8, 3, 13, 12
TWO_WORKERS = ["train", *MLP, "--epochs", str(EPOCHS), "--steps-per-epoch", str(STEPS_PER_EPOCH),
               "--backup-every", "3", "--strategy", "multiworker", "--deterministic"]


@pytest.fixture(scope="module")
def two_worker_runs(tmp_path_factory):
    """An uninterrupted two-worker run, and the same run killed mid-epoch and resumed.

    The killed run is started next to the uninterrupted one. When its chief
    has died, the other worker cannot go on (its next step is a collective
    with the chief): it stops by itself, or the fixture kills it after a
    minute, as a scheduler would. Then both workers resume.
    """
    root = tmp_path_factory.mktemp("two-workers")
    reference, killed = str(root / "reference"), str(root / "killed")

    def workers(name, run, args, fault=None):
        tmp = root / f"{name}-tmp"  # Each launch's TMPDIR.
        tmp.mkdir()
        commands = []
        for i, tf_config in enumerate(_tf_configs(2)):
            extra = {"DROPACT_FAULT": fault} if fault and i == 0 else {}
            commands.append((_worker(root / f"{name}{i}.json", *args, "--run-dir", run),
                             _env(tf_config, tmp, **extra)))
        return commands

    logs = [open(root / f"killed{i}.log", "w") for i in range(2)]
    commands = workers("killed", killed, TWO_WORKERS, fault=f"step:{KILLED_AT}")
    processes = [subprocess.Popen(argv, env=env, cwd=ROOT, start_new_session=True, stdout=log,
                                  stderr=subprocess.STDOUT) for (argv, env), log in zip(commands, logs)]
    codes = []
    try:
        reference_outputs = launch(workers("reference", reference, TWO_WORKERS), TIMEOUT, cwd=ROOT)
        for process, wait in zip(processes, (TIMEOUT, 60)):
            try:
                codes.append(process.wait(timeout=wait))
            except subprocess.TimeoutExpired:
                codes.append(None)  # Still waiting in a collective: killed below.
    finally:
        for process, log in zip(processes, logs):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            log.close()
    with open(os.path.join(killed, "log.csv")) as f:
        logged = f.read().splitlines()
    interrupted = {
        "codes": codes,
        "survivor_output": (root / "killed1.log").read_text(),
        "files": sorted(os.listdir(killed)),
        "backups": sorted(os.listdir(os.path.join(killed, "backup"))),
        "log": logged,
    }
    resumed_outputs = launch(workers("resumed", killed, ["train", "--resume"]), TIMEOUT, cwd=ROOT)
    return {
        "root": root,
        "runs": {"reference": reference, "killed": killed},
        "interrupted": interrupted,
        "outputs": {"reference": reference_outputs, "resumed": resumed_outputs},
        "reports": {name: [_report(root / f"{name}{i}.json") for i in range(2)]
                    for name in ("reference", "resumed")},
    }


@tensorflow_only
@pytest.mark.slow
def test_dropact_train_with_two_workers_end_to_end(two_worker_runs):
    run = two_worker_runs["runs"]["reference"]
    results = _results(run)
    assert [report["code"] for report in two_worker_runs["reports"]["reference"]] == [0, 0]
    assert [report["code"] for report in two_worker_runs["reports"]["resumed"]] == [0, 0]
    assert results["distribution"] == {"strategy": "multiworker", "replicas": 2, "processes": 2}
    assert results["optimizer_steps"] == EPOCHS * STEPS_PER_EPOCH
    assert [row["epoch"] for row in results["history"]] == list(range(EPOCHS))
    assert all(np.isfinite(row[key]) for row in results["history"] for key in ("loss", "val_loss"))
    assert results["history"][-1]["loss"] < results["history"][0]["loss"]
    # Only the chief wrote the run directory; the other worker's temporary
    # run directory is gone (here, and after the resumed run).
    assert sorted(os.listdir(run)) == ["backup", "checkpoint.keras", "config.json", "dataset.json", "log.csv",
                                       "model.keras", "results.json", "run.lock", "tensorboard"]
    for name in ("reference", "resumed"):
        assert not _temporary_run_dirs(two_worker_runs["root"] / f"{name}-tmp")
    with open(os.path.join(run, "log.csv")) as f:
        assert [line.split(",")[0] for line in f.read().splitlines()[1:]] == ["0", "1", "2"]
    # Both workers evaluated the same global test error and loss.
    first, second = (_summary(output) for output in two_worker_runs["outputs"]["reference"])
    assert len(first) == 1 and first == second
    assert f"{100 * results['test_error']:.2f}%, test loss {results['test_loss']:.4f}" in first[0]

    # Worker i reads shard i of the training split (examples i, i + 2, ...),
    # shuffled, 16 per step: disjoint, and within the first pass no example twice.
    split = split_fingerprints("mnist1d")
    assert len(set(split)) == len(split) == 4000
    read = []
    for worker, report in enumerate(two_worker_runs["reports"]["reference"]):
        (stream,) = report["streams"]  # One fit, from step 0.
        assert stream["start_step"] == 0
        examples = examples_read(stream, EPOCHS * STEPS_PER_EPOCH * 16)
        assert len(set(examples)) == len(examples) and set(examples) <= set(split[worker::2])
        read.append(examples)
    assert not set(read[0]) & set(read[1])


@tensorflow_only
@pytest.mark.slow
def test_a_killed_worker_stops_the_cluster_and_both_resume_to_the_uninterrupted_run(two_worker_runs):
    interrupted = two_worker_runs["interrupted"]
    # The chief died by SIGKILL mid-epoch; the other worker did not finish
    # (TensorFlow aborts its collective when the chief's connection drops,
    # or the fixture stopped it) and wrote nothing: it has no results.
    chief_code, survivor_code = interrupted["codes"]
    assert chief_code == -signal.SIGKILL
    assert survivor_code != 0, interrupted["survivor_output"][-2000:]
    assert "results.json" not in interrupted["files"]
    if survivor_code is not None:  # It ended by itself, with an error, and cleaned up.
        assert not _temporary_run_dirs(two_worker_runs["root"] / "killed-tmp")
    # The chief's latest two backups: mid-epoch steps 9 and 12.
    assert interrupted["backups"] == [f"step-{step:09d}.{ext}" for step in (9, BACKED_UP_AT)
                                      for ext in ("json", "weights.h5")]
    assert len(interrupted["log"]) == 1 + 1  # Header and epoch 0.

    reference = _results(two_worker_runs["runs"]["reference"])
    run = two_worker_runs["runs"]["killed"]
    results = _results(run)
    assert results["processes"] == 2 and results["distribution"] == reference["distribution"]
    # The resumed run is the uninterrupted run, bit for bit (--deterministic):
    # the same optimizer steps, every logged value of every epoch (the
    # interrupted epoch's averages too), test loss and error, final weights.
    assert_same_training(results, reference, tolerance=0.0)
    assert_same_weights(saved_weights(run), saved_weights(two_worker_runs["runs"]["reference"]))
    with open(os.path.join(run, "log.csv")) as f:
        assert [line.split(",")[0] for line in f.read().splitlines()[1:]] == ["0", "1", "2"]
    # Each resumed worker read exactly the batches the uninterrupted worker
    # read from the backup's step on: the rest of epoch 1, then epoch 2.
    for reference_report, report in zip(two_worker_runs["reports"]["reference"],
                                        two_worker_runs["reports"]["resumed"]):
        uninterrupted = examples_read(reference_report["streams"][0], EPOCHS * STEPS_PER_EPOCH * 16)
        rest_of_epoch, last_epoch = report["streams"]
        assert rest_of_epoch["start_step"] == BACKED_UP_AT and last_epoch["start_step"] == 2 * STEPS_PER_EPOCH
        read = (examples_read(rest_of_epoch, (2 * STEPS_PER_EPOCH - BACKED_UP_AT) * 16)
                + examples_read(last_epoch, STEPS_PER_EPOCH * 16))
        assert read == uninterrupted[BACKED_UP_AT * 16:]
