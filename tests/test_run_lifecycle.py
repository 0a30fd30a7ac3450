"""Runs that can always finish (issue 20; docs/guides/training.md): signals at an
epoch's last step and during start-up, a full disk, non-finite evaluations,
a backup whose epoch length no longer matches the data.

Every case runs `dropact train` in a subprocess, as users do, and stops it
with the fault hook (`DROPACT_FAULT`, `keras_dropact.training.faults`: a
signal sent at a named point, a full disk raised at one) or with real
signals; resumes run in subprocesses too, under a time limit, because the
failures these tests pin made resumes run forever. The runs are those of
tests/test_run_safety.py: simple-cnn on digits, 3 epochs of 4 steps of 32,
a backup every 2 steps, `--deterministic`, so a resumed run must end as the
uninterrupted run did: the same results.json record, the same final weights
bit for bit.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from keras_dropact import cli
from keras_dropact.training import faults
from keras_dropact.training import run_dir as rd
from keras_dropact.training.config import TrainConfig
from keras_dropact.training.train import train
from tests.conftest import tensorflow_only
from tests.test_run_safety import FLAGS
from tests.test_run_safety import RUN
from tests.test_run_safety import assert_ends_as_the_reference

pytestmark = [tensorflow_only, pytest.mark.slow]

RESUME_LIMIT = 300  # seconds; a resume that runs an endless epoch fails here.


def _env(fault=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"}
    env.pop(faults.ENV, None)
    if fault:
        env[faults.ENV] = fault
    return env


def _start(run, *extra, fault=None, flags=FLAGS):
    return subprocess.Popen(
        [sys.executable, "-m", "keras_dropact.cli", "train", *flags, "--run-dir", run, *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env(fault),
    )


def _finish(process, limit=600):
    try:
        _, err = process.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        pytest.fail(f"still running after {limit} s:\n{err[-3000:]}")
    return process.returncode, err


def _resume(run):
    """`dropact train --resume` in a subprocess: (exit code, stderr)."""
    return _finish(_start(run, "--resume", flags=[]), RESUME_LIMIT)


def _dropact_lines(err):
    """The lines dropact itself wrote to stderr (TensorFlow's logs apart)."""
    return [line for line in err.splitlines() if line.startswith("dropact")]


def _assert_one_line(err, command="dropact train"):
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in _dropact_lines(err) if ": error: " in line or "interrupted" in line]
    assert len(lines) == 1 and lines[0].startswith(command), err[-3000:]
    return lines[0]


def _results(run):
    def refuse(token):
        raise ValueError(f"non-strict JSON token {token}")

    with open(os.path.join(run, rd.RESULTS)) as f:
        return json.load(f, parse_constant=refuse)


# Stopped runs: each started at once in the fixture, in parallel.
STOPS = {
    # SIGTERM in epoch 0's last step (step 4 of 4): the issue's endless epoch.
    "last_step": "step:4@SIGTERM",
    # Right after the run started, before anything is written.
    "run_start": "run_start@SIGINT",
    # Right after config.json is written, before the model is built.
    "claimed": "claimed@SIGINT",
    # A full disk while the backup of step 6 is written.
    "disk_full": "backup_weights:6@ENOSPC",
}


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    root = tmp_path_factory.mktemp("lifecycle")
    processes = {name: _start(str(root / name), fault=fault) for name, fault in STOPS.items()}
    reference = str(root / "reference")
    train(TrainConfig(run_dir=reference, **RUN), verbose=0)
    outcomes = {name: (str(root / name), *_finish(process)) for name, process in processes.items()}
    return reference, outcomes


def _copy(run, tmp_path):
    target = str(tmp_path / "copy")
    if os.path.exists(run):
        shutil.copytree(run, target)
    return target


def _assert_resumes_to_the_reference(run, reference):
    code, err = _resume(run)
    assert code == 0, err[-3000:]
    assert_ends_as_the_reference(run, reference)
    with open(os.path.join(run, rd.LOG)) as f:
        assert len(f.read().splitlines()) == 1 + 3


def test_a_signal_in_an_epochs_last_step_stops_at_the_epochs_end(stopped, tmp_path):
    reference, outcomes = stopped
    run, code, err = outcomes["last_step"]
    assert code == 128 + signal.SIGTERM, err[-3000:]
    line = _assert_one_line(err)
    # The epoch ends (validation, log row, checkpoint), then the backup.
    assert "at epoch 1, step 0 (optimizer step 4); backup saved" in line
    with open(os.path.join(run, rd.LOG)) as f:
        assert len(f.read().splitlines()) == 1 + 1
    _assert_resumes_to_the_reference(_copy(run, tmp_path), reference)


def test_a_backup_at_an_epochs_last_step_is_replayed_from_the_one_before(stopped, tmp_path):
    # A backup of the previous release at an epoch's last step: step 4 of 4
    # of epoch 0, before the epoch's end. Resuming it ran an endless epoch.
    reference, outcomes = stopped
    run = _copy(outcomes["last_step"][0], tmp_path)
    backup = os.path.join(run, rd.BACKUP)
    mark = os.path.join(backup, "step-000000004.json")
    with open(mark) as f:
        state = json.load(f)
    with open(os.path.join(backup, "step-000000002.json")) as f:
        metrics = json.load(f)["metrics"]
    state.update(epoch=0, step=4, history=[], metrics=metrics)
    rd.write_json(mark, state)
    for name in (rd.LOG, rd.CHECKPOINT):  # Epoch 0 had not ended.
        if os.path.exists(os.path.join(run, name)):
            os.remove(os.path.join(run, name))
    _assert_resumes_to_the_reference(run, reference)


def test_a_backup_of_other_epoch_lengths_is_refused(stopped, tmp_path, capsys):
    # The saved run had epochs of 4 steps; its data (here: its edited
    # config.json) now give 3. The step arithmetic must not go on.
    _, outcomes = stopped
    run = _copy(outcomes["last_step"][0], tmp_path)
    path = os.path.join(run, rd.CONFIG)
    with open(path) as f:
        config = json.load(f)
    rd.write_json(path, {**config, "steps_per_epoch": 3})
    before = {name: os.path.getmtime(os.path.join(run, name)) for name in os.listdir(run)}
    assert cli.main(["train", "--resume", "--run-dir", run]) == 2
    err = capsys.readouterr().err
    assert "epochs of 4 optimizer steps" in err and "now 3" in err, err
    assert {name: os.path.getmtime(os.path.join(run, name)) for name in os.listdir(run)} == before


def test_a_signal_before_anything_is_written_leaves_nothing(stopped):
    _, outcomes = stopped
    run, code, err = outcomes["run_start"]
    assert code == 128 + signal.SIGINT, err[-3000:]
    assert "before the run started; nothing was written" in _assert_one_line(err)
    assert not os.path.exists(run)


def test_a_signal_while_the_run_starts_is_resumable(stopped, tmp_path):
    reference, outcomes = stopped
    run, code, err = outcomes["claimed"]
    assert code == 128 + signal.SIGINT, err[-3000:]
    line = _assert_one_line(err)
    assert "before training started" in line and "Resume with: dropact train --resume" in line
    assert sorted(os.listdir(run)) == ["config.json", "dataset.json", "run.lock"]
    _assert_resumes_to_the_reference(_copy(run, tmp_path), reference)


def test_a_full_disk_during_a_backup_stops_with_one_line(stopped, tmp_path):
    reference, outcomes = stopped
    run, code, err = outcomes["disk_full"]
    assert code == 74, err[-3000:]
    line = _assert_one_line(err)
    assert "No space left on device" in line and "step-000000006" in line
    assert "then resume with: dropact train --resume" in line
    # Nothing half-written: no temporary file, the last complete backup kept.
    backup = os.path.join(run, rd.BACKUP)
    assert sorted(os.listdir(backup)) == [f"step-{step:09d}.{ext}" for step in (2, 4)
                                          for ext in ("json", "weights.h5")]
    assert not [name for name in os.listdir(run) if ".tmp-" in name]
    _assert_resumes_to_the_reference(_copy(run, tmp_path), reference)


def _can_mount_a_tmpfs():
    """True where `unshare` gives this user a mount namespace (no root needed
    with user namespaces); CI containers may forbid it."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-Urm", "sh", "-c", "mount -t tmpfs tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_mount_a_tmpfs(), reason="no user mount namespace for a tmpfs")
def test_a_real_full_disk_during_a_backup(stopped, tmp_path):
    # A 1.5 MB tmpfs holds the run's first backup (1 MB) but not the second.
    # HDF5 fails inside `save_weights`; h5py then crashed the interpreter at
    # exit (a 48-line traceback, then a segmentation fault: exit 139).
    out = tmp_path / "out"
    script = (
        f"mount -t tmpfs -o size=1536k tmpfs {tmp_path}/mnt && "
        f"{sys.executable} -m keras_dropact.cli train {' '.join(FLAGS)} --run-dir {tmp_path}/mnt/run "
        f"2> {tmp_path}/err; echo $? > {tmp_path}/code; cp -r {tmp_path}/mnt/run {out}"
    )
    (tmp_path / "mnt").mkdir()
    subprocess.run(["unshare", "-Urm", "sh", "-c", script], env=_env(), timeout=600, check=True)
    err = (tmp_path / "err").read_text()
    assert (tmp_path / "code").read_text().strip() == "74", err[-3000:]
    line = _assert_one_line(err)
    assert "No space left on device" in line and "then resume with" in line
    backups = sorted(os.listdir(out / rd.BACKUP))
    assert backups == ["step-000000002.json", "step-000000002.weights.h5"], backups
    assert not [name for name in os.listdir(out) if ".tmp-" in name]
    _assert_resumes_to_the_reference(str(out), stopped[0])  # With room again.


def _signals_caught(pid):
    """The signal numbers process `pid` has handlers for (/proc SigCgt)."""
    with open(f"/proc/{pid}/status") as f:
        mask = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
    return {number for number in range(1, 65) if mask >> (number - 1) & 1}


@pytest.mark.parametrize("delay", [0.5, 1.5, 2.5])
def test_ctrl_c_during_start_up_is_one_line_and_never_lost(tmp_path, delay):
    # The SIGINTs at 0.5 s, 1.5 s and 2.5 s (counted here from the
    # moment the interpreter handles SIGINT, so that a loaded machine's
    # slow start does not shift them): while Keras, TensorFlow and JAX
    # load, a Ctrl-C gave tracebacks, or was dropped in JAX's garbage
    # collection callback and the run trained to its end.
    run = str(tmp_path / "run")
    process = _start(run)
    deadline = time.time() + 60
    while signal.SIGINT not in _signals_caught(process.pid):
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.01)
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    code, err = _finish(process, 300)
    assert code == 128 + signal.SIGINT, err[-3000:]
    line = _assert_one_line(err)
    assert "interrupted by SIGINT" in line
    assert not os.path.exists(os.path.join(run, rd.RESULTS))


def test_ctrl_c_right_after_config_json_appears(stopped, tmp_path):
    run = str(tmp_path / "run")
    process = _start(run)
    deadline = time.time() + 300
    while not os.path.exists(os.path.join(run, rd.CONFIG)):
        assert time.time() < deadline and process.poll() is None, process.communicate()[1][-3000:]
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    code, err = _finish(process, 300)
    assert code == 128 + signal.SIGINT, err[-3000:]
    assert "Resume with: dropact train --resume" in _assert_one_line(err)
    _assert_resumes_to_the_reference(run, stopped[0])


def test_a_non_finite_evaluation_is_a_divergence(tmp_path, capsys):
    # The command: finite weights, but "test loss nan", recorded as
    # finished (exit 0) with a model.keras.
    run = str(tmp_path / "nan")
    code = cli.main(["train", "--run-dir", run, "--epochs", "1", "--steps-per-epoch", "2",
                     "--lr", "1e6"])
    err = capsys.readouterr().err
    assert code == 3, err[-3000:]
    assert "not finite" in err
    results = _results(run)
    assert results["status"] == "diverged" and results["test_loss"] is None
    assert results["diverged_in_epoch"] == 0
    assert not os.path.exists(os.path.join(run, rd.MODEL))


def test_a_divergence_in_epoch_0_is_recorded_in_epoch_0(tmp_path, capsys):
    run = str(tmp_path / "diverged")
    code = cli.main(["train", "--run-dir", run, "--lr", "3e38", "--steps-per-epoch", "1",
                     "--epochs", "3"])
    assert code == 3, capsys.readouterr().err[-3000:]
    results = _results(run)
    assert results["status"] == "diverged"
    assert results["diverged_at_step"] == 1 and results["diverged_in_epoch"] == 0
    # No step was timed (a process' first step traces and is not): no speed, not 0.0.
    assert results["timed_examples"] == 0 and results["images_per_second"] is None
