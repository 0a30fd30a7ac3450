"""A run directory's files are checked when read, never trusted (issue 20;
docs/guides/training.md, docs/reference/validation.md): config.json, results.json, the backups
and run.lock. A damaged or edited file is one line naming the file and the
problem (exit 2), nothing is changed and nothing is filled in with
defaults; files written by the previous release still resume and export.
"""

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from keras_dropact import cli
from keras_dropact.training import faults
from keras_dropact.training import run_dir as rd
from keras_dropact.training.config import TrainConfig
from keras_dropact.training.train import train
from tests.conftest import assert_same_run
from tests.conftest import tensorflow_only

pytestmark = [tensorflow_only, pytest.mark.slow]

FLAGS = ["--model", "simple-cnn", "--dataset", "digits", "--epochs", "2", "--steps-per-epoch", "2",
         "--batch-size", "32", "--backup-every", "1", "--seed", "2", "--deterministic"]
# The same run as the previous release trained it: Keras' SGD momentum (no
# flag sets it; TrainConfig does).
KERAS_SGD_RUN = dict(model="simple-cnn", dataset="digits", epochs=2, steps_per_epoch=2, batch_size=32,
                     backup_every=1, seed=2, deterministic=True, momentum_convention="keras")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A finished run, and the same run SIGKILLed after optimizer step 4,
    before the end of its last epoch: its backups are those of steps 2 (the
    end of epoch 0) and 3 (mid-epoch, with its metric totals). The same two
    with Keras' SGD momentum, as the previous release trained them."""
    root = tmp_path_factory.mktemp("files")
    killed, killed_keras = str(root / "killed"), str(root / "killed-keras")
    env = {**os.environ, faults.ENV: "step:4", "TF_CPP_MIN_LOG_LEVEL": "3"}
    keras_sgd_script = (
        "import sys; from keras_dropact.training.config import TrainConfig; "
        "from keras_dropact.training.train import train; "
        f"train(TrainConfig(**{KERAS_SGD_RUN!r}, run_dir=sys.argv[1]), verbose=0)"
    )
    processes = [subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    ) for argv in (
        [sys.executable, "-m", "keras_dropact.cli", "train", *FLAGS, "--run-dir", killed],
        [sys.executable, "-c", keras_sgd_script, killed_keras],
    )]
    finished = str(root / "finished")
    assert cli.main(["train", *FLAGS, "--run-dir", finished]) == 0
    finished_keras = str(root / "finished-keras")
    train(TrainConfig(**KERAS_SGD_RUN, run_dir=finished_keras), verbose=0)
    for process in processes:
        _, err = process.communicate(timeout=600)
        assert process.returncode == -signal.SIGKILL, err[-3000:]
    return {"finished": finished, "killed": killed,
            "finished-keras": finished_keras, "killed-keras": killed_keras}


def _copy(runs, name, tmp_path):
    target = str(tmp_path / name)
    shutil.copytree(runs[name], target)
    return target


def _snapshot(run):
    """Every file of the run with its bytes: what must not change."""
    found = {}
    for folder, _, names in os.walk(run):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, run)] = f.read()
    return found


def _refused(argv, capsys, run, *phrases, command="dropact train"):
    """Runs `dropact ARGV`: exit 2, one line naming the phrases, `run` unchanged."""
    before = _snapshot(run)
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith(command)]
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    assert _snapshot(run) == before
    return lines[0]


def _edit_json(run, name, edit):
    path = os.path.join(run, name)
    with open(path) as f:
        values = json.load(f)
    rd.write_json(path, edit(values))


def _truncate(run, name):
    path = os.path.join(run, name)
    with open(path, "rb") as f:
        text = f.read()
    with open(path, "wb") as f:
        f.write(text[: len(text) // 2])


@pytest.mark.parametrize("edit, problem", [
    (lambda config: {}, "missing keys ['activation', 'augment'"),
    (lambda config: {**config, "epochs": "2"}, "'epochs' is '2'"),
    (lambda config: {**config, "epochz": 2}, "unknown keys ['epochz']"),
    (lambda config: [config], "a JSON object is needed, not list"),
    (lambda config: {**config, "deterministic": 1}, "'deterministic' is 1"),
])
def test_an_edited_config_json_is_refused_never_filled_in(runs, tmp_path, capsys, edit, problem):
    # `{}` used to train with every default: 345 steps instead of 4.
    run = _copy(runs, "killed", tmp_path)
    _edit_json(run, rd.CONFIG, edit)
    _refused(["train", "--resume", "--run-dir", run], capsys, run,
             f"{os.path.join(run, rd.CONFIG)!r} is not a run configuration", problem)


def test_a_truncated_config_json_is_named_and_export_writes_nothing(runs, tmp_path, capsys):
    run = _copy(runs, "finished", tmp_path)
    _truncate(run, rd.CONFIG)
    named = f"{os.path.join(run, rd.CONFIG)!r} is not valid JSON"
    _refused(["train", "--resume", "--run-dir", run], capsys, run, named)
    root = str(tmp_path / "exports")
    _refused(["export", run, "--root", root], capsys, run, named, command="dropact export")
    assert not os.path.exists(root)


@pytest.mark.parametrize("content, problem", [
    (b"[]", "a JSON object is needed, not list"),
    (b'{"status": "finished"}', "missing keys ['config'"),
    (b'{"status": "running"}', "'status' is 'running'"),
    (None, "is not valid JSON"),
    # Issue 25: "already finished (test error -500.00%)", copied into the export.
    (lambda results: {**results, "test_error": -5.0}, "'test_error' is -5.0, not in [0, 1]"),
    (lambda results: {**results, "history": ["x"], "epochs_completed": 1},
     "history row 0 is 'x', not the logs of epoch 0"),
])
def test_a_damaged_results_json_is_named(runs, tmp_path, capsys, content, problem):
    run = _copy(runs, "finished", tmp_path)
    path = os.path.join(run, rd.RESULTS)
    if content is None:
        _truncate(run, rd.RESULTS)
    elif callable(content):
        _edit_json(run, rd.RESULTS, content)
    else:
        with open(path, "wb") as f:
            f.write(content)
    _refused(["train", "--resume", "--run-dir", run], capsys, run, repr(path), problem)
    root = str(tmp_path / "exports")
    _refused(["export", run, "--root", root], capsys, run, repr(path), problem,
             command="dropact export")
    assert not os.path.exists(root)


def test_a_run_lock_that_is_a_folder_is_named(runs, tmp_path, capsys):
    run = _copy(runs, "killed", tmp_path)
    os.remove(os.path.join(run, rd.LOCK))
    os.mkdir(os.path.join(run, rd.LOCK))
    _refused(["train", "--resume", "--run-dir", run], capsys, run,
             repr(os.path.join(run, rd.LOCK)), "not a file")


def test_a_backup_naming_weights_outside_its_folder_is_never_loaded(runs, tmp_path, capsys):
    # The newest backup names another run's weights file, with its checksum.
    run = _copy(runs, "killed", tmp_path)
    other = _copy(runs, "finished", tmp_path)
    backup = os.path.join(run, rd.BACKUP)
    newest = max(name for name in os.listdir(backup) if name.endswith(".json"))
    foreign = max(name for name in os.listdir(os.path.join(other, rd.BACKUP)) if name.endswith(".h5"))
    from keras_dropact.training.backups import sha256

    relative = os.path.join("..", "..", os.path.basename(other), rd.BACKUP, foreign)
    _edit_json(run, os.path.join(rd.BACKUP, newest), lambda state: {
        **state, "weights": relative, "sha256": sha256(os.path.join(backup, relative))})
    results = train(TrainConfig(run_dir=run), resume=True, verbose=0)
    err = capsys.readouterr().err
    assert f"skipped a backup: {newest}: " in err and repr(relative) in err, err
    assert results["processes"] == 2
    assert_same_run(run, runs["finished"])  # Replayed from the backup before.


def test_a_backup_with_other_metric_totals_falls_back_to_the_one_before(runs, tmp_path, capsys):
    # Issue 25: every resume stopped in its first step ("The backup holds 3
    # metric values, the model 4", exit 2), naming no file, using no other backup.
    run = _copy(runs, "killed", tmp_path)
    _edit_json(run, os.path.join(rd.BACKUP, "step-000000003.json"),
               lambda state: {**state, "metrics": state["metrics"][:-1]})
    assert cli.main(["train", "--resume", "--run-dir", run]) == 0
    assert ("skipped a backup: step-000000003.json: it holds 3 metric values, the model 4"
            in capsys.readouterr().err)
    assert_same_run(run, runs["finished"])  # Replayed from the backup before.


@pytest.mark.parametrize("folder", [rd.BACKUP, rd.TENSORBOARD])
def test_a_run_folder_that_is_a_link_is_refused(runs, tmp_path, capsys, folder):
    # Issue 25: backups were written and pruned in the folder the link names.
    run = _copy(runs, "killed", tmp_path)
    elsewhere = str(tmp_path / "elsewhere")
    if os.path.isdir(os.path.join(run, folder)):
        shutil.move(os.path.join(run, folder), elsewhere)
    else:
        os.mkdir(elsewhere)
    os.symlink(elsewhere, os.path.join(run, folder))
    before = _snapshot(elsewhere)
    _refused(["train", "--resume", "--run-dir", run], capsys, run,
             f"{os.path.join(run, folder)!r} is a link to {elsewhere!r}")
    assert _snapshot(elsewhere) == before


# config.json keys 0.1.0 did not write.
ADDED = ("image_size", "train_size", "backend", "momentum_convention", "model_kwargs", "weights",
         "convert_activation", "channels", "model_sha256", "weights_sha256")


def _as_the_previous_release_wrote_it(run):
    """The run's files as keras-dropact before issue 20 wrote them: no
    `image_size`, `train_size`, `backend`, `momentum_convention` and the keys
    of models that are not presets (issue 26) in config.json (there was no
    --image-size or --train-size; issue 25 records the backend; TorchSGD came
    after), no dataset.json, and results.json as the release wrote it."""
    _edit_json(run, rd.CONFIG, lambda config: {
        k: v for k, v in config.items() if k not in ADDED})
    os.remove(os.path.join(run, "dataset.json"))


def _optimizer_of(run):
    """The class of the optimizer the run's model.keras was compiled with."""
    from keras_dropact.training.artifacts import load_model

    return type(load_model(run).optimizer)


def test_a_new_run_records_the_pytorch_momentum_convention(runs):
    import keras_dropact

    with open(os.path.join(runs["finished"], rd.CONFIG)) as f:
        assert json.load(f)["momentum_convention"] == "pytorch"
    assert _optimizer_of(runs["finished"]) is keras_dropact.TorchSGD


def test_a_run_of_the_previous_release_resumes_and_exports(runs, tmp_path, capsys):
    import keras

    run = _copy(runs, "killed-keras", tmp_path)
    _as_the_previous_release_wrote_it(run)
    # A user's files whose names hold ".tmp-" (issue 25: deleted by the
    # resume, then an IsADirectoryError), and a killed writer's own one.
    users = ["my.tmp-notes.txt", os.path.join("notes.tmp-1", "a.txt"),
             os.path.join(rd.BACKUP, "old.tmp-2")]
    for name in [*users, "log.csv.tmp-99999"]:
        os.makedirs(os.path.dirname(os.path.join(run, name)), exist_ok=True)
        with open(os.path.join(run, name), "w") as f:
            f.write("mine")
    capsys.readouterr()
    assert cli.main(["train", "--resume", "--run-dir", run]) == 0
    assert "skipped a backup" not in capsys.readouterr().err  # The mid-epoch backup of step 3.
    # It goes on with the optimizer it trained with, Keras' SGD (its backups
    # hold Keras' velocities), and ends as the uninterrupted run did.
    with open(os.path.join(run, rd.RESULTS)) as f:
        assert json.load(f)["config"]["momentum_convention"] == "keras"
    assert _optimizer_of(run) is keras.optimizers.SGD
    assert_same_run(run, runs["finished-keras"])
    assert all(open(os.path.join(run, name)).read() == "mine" for name in users)
    assert not os.path.exists(os.path.join(run, "log.csv.tmp-99999"))
    finished = _copy(runs, "finished", tmp_path)
    _as_the_previous_release_wrote_it(finished)
    # Before the JAX backend, results.json had no "distribution" either; its
    # config is config.json's.
    _edit_json(finished, rd.RESULTS, lambda r: {
        **{k: v for k, v in r.items() if k != "distribution"},
        "config": {k: v for k, v in r["config"].items() if k not in ADDED}})
    capsys.readouterr()
    assert cli.main(["train", "--resume", "--run-dir", finished]) == 0
    assert "already finished" in capsys.readouterr().out
    assert cli.main(["evaluate", finished]) == 0
    assert cli.main(["export", finished, "--root", str(tmp_path / "exports"), "--format", "keras"]) == 0
