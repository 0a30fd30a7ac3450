"""Runs that lose nothing: exact resume after SIGKILL, damaged backups,
divergence, the run lock, SIGTERM (issue 15; docs/guides/training.md).

The kills are real (`DROPACT_FAULT`, `keras_dropact.training.faults`: the
training subprocess SIGKILLs itself at a named point); the resumes run in
this process. Every run is simple-cnn on the offline digits set, 3 epochs of
4 steps of 32 examples, a backup every 2 optimizer steps, `--deterministic`,
so a resumed run must end as the uninterrupted run did, exactly: the same
results.json record and the same final weights, bit for bit.
"""

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from keras_dropact import cli
from keras_dropact.training.backups import Backups
from keras_dropact.training import faults
from keras_dropact.training import run_dir as rd
from keras_dropact.training.config import TrainConfig
from keras_dropact.training.train import train
from tests.conftest import assert_same_run
from tests.conftest import wait_until_stopped
from tests.conftest import tensorflow_only

pytestmark = [tensorflow_only, pytest.mark.slow]

RUN = dict(model="simple-cnn", dataset="digits", epochs=3, steps_per_epoch=4, batch_size=32,
           backup_every=2, deterministic=True, seed=1)
FLAGS = ["--model", "simple-cnn", "--dataset", "digits", "--epochs", "3", "--steps-per-epoch", "4",
         "--batch-size", "32", "--backup-every", "2", "--deterministic", "--seed", "1"]
STEPS = 12
# Where to kill: mid-epoch (after step 7; the last backup is step 6, two
# steps into epoch 1), right after the end-of-epoch backup of epoch 1,
# between that epoch's checkpoint and its log.csv row, and in the final save.
KILLS = ["step:7", "epoch_backup:1", "log_row:1", "final_save"]


def _strict_json(path):
    def refuse(token):
        raise ValueError(f"non-strict JSON token {token}")

    with open(path) as f:
        return json.load(f, parse_constant=refuse)


def assert_ends_as_the_reference(run, reference):
    """The resumed run directory `run` IS the uninterrupted run `reference`
    (`--deterministic`: the same batches, masks and metric totals): 3
    epochs, 12 optimizer steps, the same results.json record (every logged
    value of every epoch, test loss and error, exactly) and final weights,
    bit for bit."""
    results = _strict_json(os.path.join(run, rd.RESULTS))
    assert [row["epoch"] for row in results["history"]] == [0, 1, 2]
    assert results["optimizer_steps"] == STEPS
    assert_same_run(run, reference)


def _train_process(run, *extra, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "keras_dropact.cli", "train", *FLAGS, "--run-dir", run, *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The uninterrupted reference run and the killed runs (one subprocess
    per kill point, in parallel): (reference run directory, its results,
    {kill point: run directory})."""
    root = tmp_path_factory.mktemp("safety")
    processes = {}
    for point in KILLS:
        env = {**os.environ, faults.ENV: point, "TF_CPP_MIN_LOG_LEVEL": "3"}
        processes[point] = _train_process(str(root / point.replace(":", "-")), env=env)
    reference = str(root / "reference")
    results = train(TrainConfig(run_dir=reference, **RUN), verbose=0)
    killed = {}
    for point, process in processes.items():
        _, err = process.communicate(timeout=600)
        assert process.returncode == -signal.SIGKILL, f"{point}: rc {process.returncode}\n{err[-2000:]}"
        killed[point] = str(root / point.replace(":", "-"))
    return reference, results, killed


def _copy(run, tmp_path, name="copy"):
    target = str(tmp_path / name)
    shutil.copytree(run, target)
    return target


@pytest.mark.parametrize("point", KILLS)
def test_sigkill_then_resume_is_the_uninterrupted_run(runs, point, tmp_path):
    reference, _, killed = runs
    run = _copy(killed[point], tmp_path)
    assert not os.path.exists(os.path.join(run, rd.RESULTS))
    for name in os.listdir(run):  # Atomic writes: no empty file survives a kill.
        path = os.path.join(run, name)
        assert not os.path.isfile(path) or name == rd.LOCK or os.path.getsize(path) > 0, name
    results = train(TrainConfig(run_dir=run), resume=True, verbose=0)
    assert_ends_as_the_reference(run, reference)
    assert results["processes"] == 2
    assert _strict_json(os.path.join(run, rd.RESULTS)) == json.loads(json.dumps(results.to_json()))
    with open(os.path.join(run, rd.LOG)) as f:
        assert len(f.read().splitlines()) == 1 + 3
    assert not [n for n in os.listdir(run) if ".tmp-" in n]


def test_reference_records_are_counts_not_guesses(runs):
    _, reference, _ = runs
    # 12 steps; each process' first (tracing) step is not timed: 11 x 32
    # examples (4 steps x 3 epochs never reach the last, smaller batch).
    assert reference["timed_examples"] == 11 * 32
    assert reference["images_per_second"] == pytest.approx(
        reference["timed_examples"] / reference["train_seconds"])
    assert reference["processes"] == 1 and reference["wall_seconds"] >= reference["train_seconds"]


@pytest.mark.parametrize("damage", ["flipped byte in the weights", "empty metadata"])
def test_a_damaged_latest_backup_falls_back_to_the_one_before(runs, tmp_path, damage, capsys):
    reference, _, killed = runs
    run = _copy(killed["step:7"], tmp_path)
    backups = Backups(os.path.join(run, rd.BACKUP))
    (newest, mark), _ = backups.marks()
    assert newest == 6
    with open(mark) as f:
        weights = os.path.join(run, rd.BACKUP, json.load(f)["weights"])
    if damage == "empty metadata":
        open(mark, "w").close()
    else:
        with open(weights, "r+b") as f:
            f.seek(os.path.getsize(weights) // 2)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0xFF]))
    train(TrainConfig(run_dir=run), resume=True, verbose=0)
    assert "skipped a backup: step-000000006.json" in capsys.readouterr().err
    assert_ends_as_the_reference(run, reference)  # Replayed from step 4.


def _backup_files(run):
    folder = os.path.join(run, rd.BACKUP)
    return [os.path.join(folder, name) for name in sorted(os.listdir(folder))]


def test_damaged_backups_never_touch_a_finished_run(runs, tmp_path, capsys):
    finished, _, _ = runs
    for index, _ in enumerate(_backup_files(finished)):
        for damage in ("delete", "garbage"):
            run = _copy(finished, tmp_path, f"{index}-{damage}")
            target = _backup_files(run)[index]
            if damage == "delete":
                os.remove(target)
            else:
                with open(target, "wb") as f:
                    f.write(b"garbage")
            before = {name: open(os.path.join(run, name), "rb").read() for name in (rd.MODEL, rd.RESULTS)}
            assert cli.main(["train", "--resume", "--run-dir", run]) == 0
            assert "already finished" in capsys.readouterr().out
            for name, content in before.items():
                assert open(os.path.join(run, name), "rb").read() == content, (target, name)


def test_an_unfinished_run_without_usable_backup_is_left_alone(runs, tmp_path, capsys):
    _, _, killed = runs
    run = _copy(killed["log_row:1"], tmp_path, "gone")
    shutil.rmtree(os.path.join(run, rd.BACKUP))
    before = sorted(os.listdir(run))
    assert cli.main(["train", "--resume", "--run-dir", run]) == 2
    assert "holds no backup" in capsys.readouterr().err
    assert sorted(os.listdir(run)) == before
    run = _copy(killed["log_row:1"], tmp_path, "broken")
    for path in _backup_files(run):
        if path.endswith(".h5"):
            with open(path, "wb") as f:
                f.write(b"garbage")
    assert cli.main(["train", "--resume", "--run-dir", run]) == 2
    err = capsys.readouterr().err
    assert "No usable backup" in err and "SHA-256" in err


def test_resume_refuses_flags_that_change_the_run(runs, capsys):
    _, _, killed = runs
    assert cli.main(["train", "--resume", "--run-dir", killed["final_save"], "--epochs", "5"]) == 2
    assert "--epochs 5 (saved: 3)" in capsys.readouterr().err


def test_divergence_stops_with_a_strict_json_record(tmp_path, capsys):
    run = str(tmp_path / "diverged")
    argv = ["train", *FLAGS, "--lr", "1e6", "--run-dir", run]
    assert cli.main(argv) == 3
    assert "diverged" in capsys.readouterr().err
    results = _strict_json(os.path.join(run, rd.RESULTS))
    assert results["status"] == "diverged"
    assert 1 <= results["diverged_at_step"] <= STEPS
    assert results["optimizer_steps"] == results["diverged_at_step"]
    assert not os.path.exists(os.path.join(run, rd.MODEL))
    # Every backup kept holds finite weights.
    import h5py

    for path in _backup_files(run):
        if path.endswith(".h5"):
            with h5py.File(path) as f:
                f.visititems(lambda name, item: isinstance(item, h5py.Dataset)
                             and item.dtype.kind == "f" and np.testing.assert_array_equal(
                                 np.isfinite(item[()]), True))
    assert cli.main(["train", "--resume", "--run-dir", run]) == 2
    assert "diverged at optimizer step" in capsys.readouterr().err


def test_sigterm_saves_a_backup_and_prints_the_resume_command(runs, tmp_path, capsys):
    # The run stops itself (SIGSTOP) right after optimizer step 5, mid-epoch
    # 1; the SIGTERM, sent meanwhile, reaches it when it continues, as a
    # scheduler's would at that moment.
    reference, _, _ = runs
    run = str(tmp_path / "terminated")
    process = _train_process(run, env={**os.environ, faults.ENV: "step:5@SIGSTOP", "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        wait_until_stopped(process)
        # A second process on the live run is refused and changes nothing.
        assert cli.main(["train", "--resume", "--run-dir", run]) == 2
        assert "in use by another dropact process" in capsys.readouterr().err
        process.send_signal(signal.SIGTERM)
        process.send_signal(signal.SIGCONT)
        _, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 128 + signal.SIGTERM, err[-2000:]
    (line,) = [line for line in err.splitlines() if "Resume with:" in line]
    assert "at epoch 1, step 1 (optimizer step 5); backup saved" in line, line
    command = shlex.split(line.split("Resume with: ", 1)[1])
    assert command[:2] == ["dropact", "train"]
    assert Backups(os.path.join(run, rd.BACKUP)).latest() == 5
    assert cli.main(command[1:]) == 0
    assert_ends_as_the_reference(run, reference)
    assert _strict_json(os.path.join(run, rd.RESULTS))["processes"] == 2


def test_stream_resumes_at_any_batch():
    from keras_dropact import pipelines

    make = pipelines.stream_fn("digits", "train", 32, augment="standard", seed=4, shuffle=True)
    resumed = pipelines.stream_fn("digits", "train", 32, start_step=43, augment="standard", seed=4,
                                  shuffle=True)

    class Context:
        num_replicas_in_sync = num_input_pipelines = 1
        input_pipeline_id = 0

        def get_per_replica_batch_size(self, batch):
            return batch

    full = [(x.numpy(), y.numpy()) for x, y in make(Context()).take(50)]
    tail = [(x.numpy(), y.numpy()) for x, y in resumed(Context()).take(7)]
    for (x, y), (rx, ry) in zip(full[43:], tail):  # Across the pass boundary (45 batches).
        np.testing.assert_array_equal(x, rx)
        np.testing.assert_array_equal(y, ry)
    assert len(full[44][1]) == 1437 - 44 * 32  # The pass' last, smaller batch.
    assert not np.array_equal(full[0][1], full[45][1])  # Pass 2 is shuffled anew.
    assert pipelines.stream_examples(1437, 32, 43, 50) == 32 + 29 + 5 * 32
    # A batch larger than the data: each step reads the whole split, not 2048.
    assert pipelines.stream_examples(1437, 2048, 0, 3) == 3 * 1437


def test_results_json_is_strict(tmp_path):
    path = str(tmp_path / "r.json")
    rd.write_json(path, {"loss": float("nan"), "rows": [{"x": float("inf")}, 1.5]})
    assert _strict_json(path) == {"loss": None, "rows": [{"x": None}, 1.5]}
