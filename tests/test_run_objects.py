"""The pieces of a run, one at a time: backups, the training state, the
runtime's step arithmetic and writable directory, stop signals.

Whole runs (kills, resumes, divergence) are tests/test_run_safety.py.
"""

import json
import os
import re
import signal

import keras
import numpy as np
import pytest

from keras_dropact import DropActivation
from keras_dropact.interrupts import StopSignals
from keras_dropact.training import run_dir as rd
from keras_dropact.training.backups import KEEP
from keras_dropact.training.backups import Backups
from keras_dropact.training.backups import sha256
from keras_dropact.training.config import TrainConfig
from keras_dropact.training.counters import Counters
from keras_dropact.training.progress import Progress
from keras_dropact.training.results import Results
from keras_dropact.training.results import read_results
from keras_dropact.training.results import write_results
from keras_dropact.training.run import Run
from keras_dropact.training.run_files import write_json
from keras_dropact.training.runtime import Runtime
from keras_dropact.training.state import TrainingState
from keras_dropact.training.state import seed_variables
from keras_dropact.training.stops import TrainingDiverged
from keras_dropact.training.stops import TrainingInterrupted
from keras_dropact.training.stops import raise_if_signalled
from tests.conftest import assert_same_weights


def _model(seed=1, inputs=3, units=2):
    model = keras.Sequential([keras.Input((inputs,)), keras.layers.Dense(units), DropActivation(seed=seed)])
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def _state(step, **values):
    """The state after optimizer step `step` of a run of 4-step epochs."""
    history = [{"epoch": epoch, "loss": 1.0 / (epoch + 1)} for epoch in range(step // 4)]
    return TrainingState(epoch=step // 4, step=step % 4, optimizer_steps=step, steps_per_epoch=4,
                         history=history, seeds=[[step, 7]], processes=1, **values)


def test_training_state_round_trips_through_json():
    state = TrainingState(
        epoch=2, step=3, optimizer_steps=11, steps_per_epoch=4,
        history=[{"epoch": 0, "loss": 1.5}, {"epoch": 1, "loss": 0.75}],
        metrics=[[2.5], [4.0]], epoch_seconds=0.25, seeds=[[1, 2]], wall_seconds=9.5,
        train_seconds=3.0, timed_examples=320, processes=2,
    )
    assert TrainingState.from_json(json.loads(json.dumps(state.to_json()))) == state
    assert state.mid_epoch and not TrainingState(epoch=3).mid_epoch
    assert TrainingState(step=4, steps_per_epoch=4).before_epoch_end and not state.before_epoch_end


def test_a_backup_holds_the_state_and_its_envelope(tmp_path):
    backups = Backups(str(tmp_path / "backup"))
    model = _model()
    seed_variables(model)[0].assign(np.array([5, 9], dtype="uint32"))
    backups.save(model, _state(6))
    (step, mark), = backups.marks()
    with open(mark) as f:
        saved = json.load(f)
    # The backup format (FORMAT 2): the state's fields, then the weights file and its hash.
    assert list(saved) == [*TrainingState().to_json(), "format", "weights", "sha256"]
    assert step == 6 and saved["weights"] == "step-000000006.weights.h5" and saved["format"] == 2
    restored_model = _model(seed=2)
    state = backups.restore(restored_model)
    assert state == _state(6)
    assert_same_weights(restored_model.weights, model.weights)
    # The seed state comes from the JSON, not from the weights file.
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(seed_variables(restored_model)[0]), [6, 7])


def test_a_backup_of_format_1_restores_into_an_optimizer_with_a_schedule(tmp_path, recwarn):
    """Before issue 25 the optimizer's rate was a variable, saved second in
    its state; with a `LearningRateSchedule` there is none (schedule.py)."""
    backups = Backups(str(tmp_path / "backup"))
    old = _model()  # SGD(0.1): a learning-rate variable, as format 1 has.
    old.optimizer.iterations.assign(6)
    for variable in old.optimizer.variables[2:]:
        variable.assign(np.full(variable.shape, 0.25, "float32"))
    backups.save(old, _state(6))
    (_, mark), = backups.marks()
    with open(mark) as f:
        rd.write_json(mark, {**json.load(f), "format": 1})
    new = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), DropActivation(seed=3)])
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([3], [0.5, 0.05])
    new.compile(optimizer=keras.optimizers.SGD(schedule, momentum=0.9), loss="mse")
    new.optimizer.build(new.trainable_variables)
    assert len(new.optimizer.variables) == len(old.optimizer.variables) - 1
    assert backups.restore(new) == _state(6)
    assert not [w for w in recwarn if "Skipping variable loading" in str(w.message)]
    assert int(keras.ops.convert_to_numpy(new.optimizer.iterations)) == 6
    for variable in new.optimizer.variables[1:]:
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), 0.25)
    for a, b in zip(new.weights, old.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    assert float(keras.ops.convert_to_numpy(new.optimizer.learning_rate)) == np.float32(0.05)


def test_backups_keep_the_latest_two_and_prune_the_rest(tmp_path):
    folder = tmp_path / "backup"
    backups = Backups(str(folder))
    model = _model()
    assert backups.latest() is None and backups.restore(model) is None
    backups.save(model, _state(2))
    # A killed writer's leftovers of an old step go with that step; a newer one stays.
    (folder / "step-000000002.tmp-99.weights.h5").write_bytes(b"partial")
    (folder / "step-000000009.tmp-99.weights.h5").write_bytes(b"partial")
    for step in (4, 6, 8):
        backups.save(model, _state(step))
    assert KEEP == 2 and backups.latest() == 8
    assert sorted(os.listdir(folder)) == [
        "step-000000006.json", "step-000000006.weights.h5",
        "step-000000008.json", "step-000000008.weights.h5",
        "step-000000009.tmp-99.weights.h5",
    ]


def test_restore_falls_back_to_the_older_backup_then_refuses(tmp_path, capsys):
    backups = Backups(str(tmp_path / "backup"))
    model = _model()
    backups.save(model, _state(4))
    backups.save(model, _state(6))
    (tmp_path / "backup" / "step-000000006.weights.h5").write_bytes(b"garbage")
    assert backups.restore(_model()).optimizer_steps == 4
    assert "skipped a backup: step-000000006.json: step-000000006.weights.h5 is damaged" in (
        capsys.readouterr().err
    )
    os.remove(tmp_path / "backup" / "step-000000004.weights.h5")
    with pytest.raises(RuntimeError, match=r"No usable backup .*step-000000006.json: .*damaged.*"
                                           r"step-000000004.json: its weights file .* is missing"):
        backups.restore(_model())


def test_a_flipped_byte_anywhere_in_a_large_backup_is_refused(tmp_path, capsys):
    # A backup of more than 1 MiB (hashed in blocks of 1 MiB): one byte
    # flipped at its start, its middle, or in its last 4 KiB is a SHA-256
    # mismatch, never a silent load; the backup before it is restored.
    model = _model(inputs=600, units=600)
    backups = Backups(str(tmp_path / "backup"))
    backups.save(model, _state(4))
    backups.save(model, _state(6))
    weights = backups._path(6, ".weights.h5")
    size = os.path.getsize(weights)
    assert size > 1 << 20
    original = open(weights, "rb").read()
    for offset in (0, size // 2, size - 4096, size - 1):
        damaged = bytearray(original)
        damaged[offset] ^= 0xFF
        with open(weights, "wb") as f:
            f.write(damaged)
        assert backups.restore(model).optimizer_steps == 4, offset
        assert ("skipped a backup: step-000000006.json: step-000000006.weights.h5 is damaged "
                "(SHA-256 mismatch)") in capsys.readouterr().err, offset
    with open(weights, "wb") as f:
        f.write(original)
    assert backups.restore(model).optimizer_steps == 6


def test_backups_are_taken_every_n_steps_but_not_at_an_epochs_last_step():
    backups = Backups("unused", every=2)
    # Right after optimizer step n (1-based) of a run of 4-step epochs.
    after = [TrainingState(epoch=(n - 1) // 4, step=(n - 1) % 4 + 1, optimizer_steps=n,
                           steps_per_epoch=4) for n in range(1, 13)]
    # Steps 4, 8, 12 end an epoch, which is backed up at its end anyway.
    assert [state.optimizer_steps for state in after if backups.should_save(state)] == [2, 6, 10]


def _runtime(processes=1, drop_remainder=False):
    runtime = Runtime()
    runtime.num_processes, runtime.drop_remainder = processes, drop_remainder
    return runtime


def test_steps_per_epoch_is_one_pass_and_fit_steps_only_when_pipelines_repeat():
    assert _runtime().steps_per_epoch(1437, 32) == 45  # The last batch is smaller.
    assert _runtime(drop_remainder=True).steps_per_epoch(1437, 32) == 44
    assert _runtime().steps(360, 32) is None  # One process: the data ends by itself.
    assert _runtime(processes=2).steps(360, 32) == 12
    assert _runtime(processes=2, drop_remainder=True).steps(360, 32) == 11


def test_only_the_chief_writes_the_run_directory(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    os.mkdir(tmp_path / "tmp")
    run = tmp_path / "run"
    (run / "backup").mkdir(parents=True)
    (run / "backup" / "step-000000002.json").write_text("{}")
    # A killed process' temporary file, which the chief may be removing: not copied.
    (run / "backup" / "step-000000003.json.tmp-999").write_text("{")
    with rd.RunDir(str(run)).writable(is_chief=True, task="worker1") as out:
        assert out == str(run)
    with rd.RunDir(str(run)).writable(is_chief=False, task="worker1") as out:
        assert out != str(run) and os.path.basename(out).startswith("dropact-worker1-")
        assert os.listdir(os.path.join(out, "backup")) == ["step-000000002.json"]
    assert not os.path.exists(out)
    # A SIGKILLed worker cannot remove its copy; the next process of that
    # run and task removes it (one name per run and task), others keep theirs.
    os.makedirs(os.path.join(out, "backup"))
    (tmp_path / "tmp" / "dropact-worker1-0123").mkdir()  # Another run's.
    with open(os.path.join(out, "backup", "step-000000001.weights.h5"), "wb") as f:
        f.write(b"a killed worker's copy")
    with rd.RunDir(str(run)).writable(is_chief=False, task="worker1") as again:
        assert again == out
        assert os.listdir(os.path.join(again, "backup")) == ["step-000000002.json"]
    assert sorted(os.listdir(tmp_path / "tmp")) == ["dropact-worker1-0123"]


def test_a_signal_is_a_request_to_stop_after_a_backup():
    before = signal.getsignal(signal.SIGTERM)
    with StopSignals() as signals:
        with signals:  # Nested: the run's `with` inside the command's.
            raise_if_signalled(signals, "r", _state(5), backed_up=True)  # Nothing received yet.
            os.kill(os.getpid(), signal.SIGTERM)
        assert signals.received == signal.SIGTERM
        assert signal.getsignal(signal.SIGTERM) is not before  # Still held.
        with pytest.raises(TrainingInterrupted, match=r"SIGTERM at epoch 1, step 1 \(optimizer "
                                                      r"step 5\); backup saved. Resume with: "
                                                      r"dropact train --resume --run-dir r$"):
            raise_if_signalled(signals, "r", _state(5), backed_up=True)
        with pytest.raises(TrainingInterrupted, match=r"SIGTERM before the run started; "
                                                      r"nothing was written.$"):
            raise_if_signalled(signals, "r", started=False)
        with pytest.raises(TrainingInterrupted, match=r"SIGTERM before training started. "
                                                      r"Resume with: dropact train --resume"):
            raise_if_signalled(signals, "r")
    assert signal.getsignal(signal.SIGTERM) is before


def _worker_run(tmp_path):
    """A resumed `Run` as a worker that is not the chief sees it: the run
    directory holds a finished epoch (log.csv) and no backup; the worker
    writes a temporary directory holding only its copy of backup/."""
    (tmp_path / "run" / "backup").mkdir(parents=True)
    (tmp_path / "run" / rd.LOG).write_text("epoch,loss\n0,1.0\n")
    (tmp_path / "worker" / "backup").mkdir(parents=True)
    run = Run(TrainConfig(run_dir=str(tmp_path / "run")), resumed=True)
    run.out = rd.RunDir(str(tmp_path / "worker"))
    run.backups = Backups(run.out.file(rd.BACKUP), every=50)
    return run


def test_every_process_refuses_to_train_over_a_runs_progress(tmp_path):
    # Deciding on the temporary copy, a worker would go on into `fit` and
    # wait there for a chief that refused.
    run = _worker_run(tmp_path)
    expected = (re.escape(f"Cannot resume '{tmp_path / 'run'}': '{tmp_path / 'run' / 'backup'}'")
                + r" holds no backup to resume from, but the run has progress \(log.csv\)")
    with pytest.raises(RuntimeError, match=expected):
        run._check_nothing_to_lose()


def test_a_workers_messages_name_the_run_directory_not_its_temporary_copy(tmp_path):
    run = _worker_run(tmp_path)
    progress = Progress(_state(5), run.out, run.backups, None, None, run.dir.path)
    with pytest.raises(TrainingDiverged, match=re.escape(f"{tmp_path / 'run'}/results.json")):
        progress._check(np.array([np.nan]), "the loss is not finite", epoch=1)
    with StopSignals() as signals:
        os.kill(os.getpid(), signal.SIGTERM)
        progress.signals = signals
        with pytest.raises(TrainingInterrupted, match=re.escape(f"--run-dir {tmp_path / 'run'}") + "$"):
            progress.stop_if_signalled()


def _saved(backups, step):
    with open(backups._path(step, ".json")) as f:
        return json.load(f)


@pytest.mark.parametrize("change, problem", [
    ({"epoch": "1"}, "'epoch' is '1'"),
    ({"steps_per_epoch": None}, "'steps_per_epoch' is None"),
    ({"history": None, "extra": 1}, "unknown keys ['extra']"),
    ({"step": 5}, "step 5 is not in an epoch of 4 steps"),
    ({"processes": 0}, "'processes' is 0, below 1"),
    ({"format": 3}, "not a backup of format 1 or 2 (3)"),
    ({"optimizer_steps": 2, "step": 2, "epoch": 0, "history": []},
     "it holds optimizer step 2, not 6"),
    # Issue 25: positions no run can be at were resumed (22 steps instead of 20).
    ({"epoch": 1, "step": 0}, "epoch 1, step 0 is optimizer step 4 in epochs of 4 steps, not 6"),
    ({"epoch": 0, "step": 6, "steps_per_epoch": 8}, "it holds 1 history rows at epoch 0"),
    # Typed history rows and metric totals (a 37-line traceback; exit 2
    # in the first step, without naming the file or falling back).
    ({"history": ["x"]}, "history row 0 is 'x', not the logs of epoch 0"),
    ({"history": [{"epoch": 0, "loss": [1]}]}, "history row 0 holds 'loss': [1], not a number"),
    ({"metrics": [1.0]}, "it holds 1 metric values, the model 2: it belongs to another model"),
    ({"metrics": [[1.0], 2.0]}, "its metric value for loss/total is not a number array of shape ()"),
])
def test_a_backup_is_checked_field_by_field_before_it_is_loaded(tmp_path, capsys, change, problem):
    backups = Backups(str(tmp_path / "backup"))
    model = _model()
    backups.save(model, _state(4))
    backups.save(model, _state(6))
    saved = _saved(backups, 6)
    rd.write_json(backups._path(6, ".json"), {**saved, **change})
    assert backups.restore(_model()).optimizer_steps == 4  # The one before.
    assert f"skipped a backup: step-000000006.json: {problem}" in capsys.readouterr().err


def test_a_backup_of_other_epochs_than_the_runs_is_skipped(tmp_path, capsys):
    backups = Backups(str(tmp_path / "backup"))
    backups.save(_model(), _state(4))
    backups.save(_model(), _state(6))
    assert backups.restore(_model(), steps_per_epoch=4, epochs=2) == _state(6)
    with pytest.raises(RuntimeError, match=r"step-000000006.json: it was taken in epochs of 4 "
                                           r"optimizer steps; they are now 3 .*step-000000004"):
        backups.restore(_model(), steps_per_epoch=3, epochs=2)
    assert backups.restore(_model(), steps_per_epoch=4, epochs=1) == _state(4)
    assert ("step-000000006.json: it is at epoch 1, step 2, past the run's 1 epochs"
            in capsys.readouterr().err)


def test_a_backup_naming_another_file_is_never_loaded(tmp_path, capsys):
    # Another run's weights with their checksum: a backup names only its own file.
    other = Backups(str(tmp_path / "other" / "backup"))
    other.save(_model(seed=3), _state(8))
    backups = Backups(str(tmp_path / "run" / "backup"))
    backups.save(_model(), _state(6))
    foreign = os.path.join("..", "..", "other", "backup", "step-000000008.weights.h5")
    path = os.path.join(backups.directory, foreign)
    rd.write_json(backups._path(6, ".json"), {**_saved(backups, 6), "weights": foreign,
                                              "sha256": sha256(path)})
    with pytest.raises(RuntimeError, match=r"No usable backup .*step-000000006.json: it names "
                                           r"the weights file '../../other/backup/"):
        backups.restore(_model())


def test_a_backup_at_an_epochs_last_step_is_replayed_from_the_one_before(tmp_path, capsys):
    # Earlier versions backed up "step 4 of 4, before the epoch's end" at a
    # signal; resuming it ran an endless epoch. The one before is replayed;
    # with none before it, the run starts at step 0.
    backups = Backups(str(tmp_path / "backup"))
    model = _model()
    backups.save(model, _state(2))
    backups.save(model, TrainingState(epoch=0, step=4, optimizer_steps=4, steps_per_epoch=4,
                                      metrics=[[1.0]], seeds=[[4, 7]], processes=1))
    assert backups.restore(_model()) == _state(2)
    assert ("skipped a backup: step-000000004.json: it was taken after the last step of epoch 0, "
            "before the epoch's end") in capsys.readouterr().err
    for name in os.listdir(backups.directory):
        if name.startswith("step-000000002"):
            os.remove(os.path.join(backups.directory, name))
    assert backups.restore(_model()) is None


def test_counters_keep_the_first_step_out_of_the_epochs_seconds(monkeypatch):
    # A fake clock, one reading per call: the run starts at 0 and so does
    # epoch 0; its first step (tracing) ends at 10 s and the timed interval
    # opens; validation starts at 13 (3 steps timed, epoch seconds 3).
    # Epoch 1 starts at 20 and its validation at 21; the totals are read at 24.
    clock = iter([0.0, 0.0, 10.0, 10.0, 13.0, 13.0, 20.0, 20.0, 21.0, 21.0, 24.0])
    monkeypatch.setattr("time.perf_counter", lambda: next(clock))
    counters = Counters(TrainingState(steps_per_epoch=4), lambda first, stop: 32 * (stop - first))
    counters.epoch_began(0)
    counters.step_done(1)
    counters.validation_began(4)
    assert counters.epoch_ended(4) == (3.0, 10.0)  # (epoch seconds, compile seconds)
    counters.epoch_began(4)
    counters.step_done(5)
    counters.validation_began(8)
    assert counters.epoch_ended(8) == (1.0, 0.0)  # No process started in epoch 1.
    totals = counters.totals(8)  # 24.0
    assert totals["timed_examples"] == 32 * 3 + 32 * 4
    assert totals["train_seconds"] == 3.0 + 1.0


def test_an_interval_without_a_step_times_nothing(monkeypatch):
    # One step, then validation: the only step traced, nothing was timed
    # (no images/s of 0.0).
    clock = iter([0.0, 0.0, 5.0, 5.0, 6.0, 7.0])
    monkeypatch.setattr("time.perf_counter", lambda: next(clock))
    counters = Counters(TrainingState(steps_per_epoch=1), lambda first, stop: 32 * (stop - first))
    counters.epoch_began(0)
    counters.step_done(1)
    counters.validation_began(1)
    totals = counters.totals(1)
    assert totals["timed_examples"] == 0 and totals["images_per_second"] is None


def test_a_resume_removes_the_tools_own_temporary_files_only(tmp_path):
    # Issue 25: every name holding ".tmp-" was deleted (a user's notes too),
    # then a folder of such a name stopped the resume (IsADirectoryError).
    run = tmp_path / "run"
    (run / "backup").mkdir(parents=True)
    own = ["config.json.tmp-12", "checkpoint.tmp-12.keras", "log.csv.tmp-7",
           "backup/step-000000003.tmp-12.weights.h5", "backup/step-000000003.json.tmp-12"]
    users = ["my.tmp-notes.txt", "data.tmp-3", "backup/notes.tmp-2", "backup/step-3.tmp-1.txt"]
    for name in own + users:
        (run / name).write_text("x")
    (run / "notes.tmp-1").mkdir()  # A user's folder.
    (run / "results.json.tmp-5").symlink_to(run / "my.tmp-notes.txt")  # Links are never followed.
    rd.RunDir(str(run)).remove_temporaries()
    left = sorted(os.path.relpath(os.path.join(folder, name), run)
                  for folder, folders, names in os.walk(run) for name in names + folders)
    assert left == sorted(["backup", "notes.tmp-1", "results.json.tmp-5", *users])


def _results_json(**change):
    """A finished run's results.json object, with `change`."""
    config = TrainConfig(run_dir="r").to_dict()
    values = {
        "status": "finished", "trainable_parameters": 10, "test_error": 0.25, "test_loss": 0.5,
        "config": config, "recipe": {"epochs": 2, "batch_size": 32}, "epochs_completed": 2,
        "optimizer_steps": 8, "history": [{"epoch": 0, "loss": 1.0}, {"epoch": 1, "loss": None}],
        "wall_seconds": 3.5, "train_seconds": 2.0, "timed_examples": 224,
        "images_per_second": 112.0, "processes": 1,
        "distribution": {"strategy": "none", "replicas": 1, "processes": 1},
        "versions": {"keras": "3"},
    }
    return {**values, **change}


def test_results_are_one_typed_record_read_as_written(tmp_path):
    results = Results.from_json(_results_json())
    assert results.test_error == 0.25 and results["history"][1] == {"epoch": 1, "loss": None}
    assert dict(results) == _results_json() and list(results)[:4] == [
        "status", "trainable_parameters", "test_error", "test_loss"]
    write_results(str(tmp_path), results)
    assert read_results(str(tmp_path)) == results and read_results(str(tmp_path / "none")) is None
    # Runs before the JAX backend have no "distribution"; it stays absent.
    old = {k: v for k, v in _results_json().items() if k != "distribution"}
    assert dict(Results.from_json(old)) == old
    diverged = _results_json(status="diverged", test_error=None, test_loss=None,
                             diverged_at_step=8, diverged_in_epoch=1, message="m")
    del diverged["trainable_parameters"]
    assert Results.from_json(diverged).diverged_at_step == 8


@pytest.mark.parametrize("change, problem", [
    ({"test_error": -5.0}, "'test_error' is -5.0, not in [0, 1]"),
    ({"test_error": 1.5}, "'test_error' is 1.5, not in [0, 1]"),
    ({"wall_seconds": -1.0}, "'wall_seconds' is -1.0, below 0"),
    ({"processes": 0}, "'processes' is 0, below 1"),
    ({"timed_examples": 10**30}, "'timed_examples' is 1000000000000000000000000000000"),
    ({"images_per_second": 0.0}, "'images_per_second' is 0.0, not positive"),
    ({"history": ["x"], "epochs_completed": 1}, "history row 0 is 'x', not the logs of epoch 0"),
    ({"history": [{"epoch": 1}], "epochs_completed": 1}, "history row 0 is {'epoch': 1}"),
    ({"history": [{"epoch": 0, "loss": "low"}], "epochs_completed": 1},
     "history row 0 holds 'loss': 'low', not a number"),
    ({"epochs_completed": 3}, "'epochs_completed' is 3, with 2 history rows of a 2-epoch recipe"),
    ({"config": {"model": "x"}}, "its 'config' is no run configuration: missing keys"),
    ({"status": "diverged"}, "missing keys ['diverged_at_step', 'diverged_in_epoch', 'message']"),
])
def test_results_out_of_range_are_refused(tmp_path, change, problem):
    with pytest.raises(ValueError) as error:
        Results.from_json(_results_json(**change))
    assert str(error.value).startswith(problem)
    write_json(str(tmp_path / "results.json"), _results_json(**change))
    with pytest.raises(RuntimeError) as error:
        read_results(str(tmp_path))
    assert str(error.value).startswith(f"{str(tmp_path / 'results.json')!r} is not a run's results "
                                       f"({problem}")
