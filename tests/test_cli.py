"""End to end: `dropact train`, `evaluate`, `export`, resume after SIGKILL, errors.

Runs on the offline `digits` dataset with a few steps, so each test takes
seconds on 2 CPU cores.
"""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from keras_dropact import cli
from keras_dropact.training import faults
from keras_dropact.training import run_dir as rd
from keras_dropact.training.config import TrainConfig
from keras_dropact.training.export import export
from keras_dropact.training.export import run_exported
from keras_dropact.training.backups import Backups
from keras_dropact.training.state import TrainingState
from keras_dropact.training.train import train
from tests.conftest import assert_same_run
from tests.conftest import tensorflow_only
from tests.conftest import wait_until_stopped

pytestmark = [tensorflow_only, pytest.mark.slow]

QUICK = ["--model", "simple-cnn", "--dataset", "digits", "--epochs", "2", "--steps-per-epoch", "4", "--batch-size", "32"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run = str(tmp_path_factory.mktemp("runs") / "digits-run")
    assert cli.main(["train", *QUICK, "--run-dir", run, "--seed", "3", "--deterministic"]) == 0
    return run


def test_train_writes_the_run_directory(trained_run):
    for name in (rd.CONFIG, rd.LOG, rd.MODEL, rd.RESULTS, rd.CHECKPOINT, rd.TENSORBOARD, rd.BACKUP):
        assert os.path.exists(os.path.join(trained_run, name)), name
    with open(os.path.join(trained_run, rd.RESULTS)) as f:
        results = json.load(f)
    assert results["epochs_completed"] == 2 and len(results["history"]) == 2
    assert 0.0 <= results["test_error"] <= 1.0 and np.isfinite(results["test_loss"])
    assert results["trainable_parameters"] > 0 and results["images_per_second"] > 0
    assert results["config"]["activation"] == "dropact" and results["config"]["p"] == 0.95
    assert results["recipe"]["epochs"] == 2 and results["recipe"]["batch_size"] == 32
    assert {"keras", "tensorflow", "keras_dropact"} <= set(results["versions"])
    # The learning rate follows the recipe and is logged per epoch.
    assert results["history"][0]["lr"] == pytest.approx(results["recipe"]["lr"])


def test_evaluate_matches_the_reported_test_error(trained_run, capsys):
    with open(os.path.join(trained_run, rd.RESULTS)) as f:
        reported = json.load(f)
    assert cli.main(["evaluate", trained_run]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["dataset"] == "digits"
    assert evaluated["test_error"] == pytest.approx(reported["test_error"], abs=1e-6)
    assert evaluated["test_loss"] == pytest.approx(reported["test_loss"], rel=1e-5)


@pytest.mark.parametrize("fmt", ["saved_model", "onnx", "keras"])
def test_export_matches_predict_and_never_overwrites(trained_run, tmp_path, fmt):
    import keras

    from keras_dropact.training.artifacts import load_model

    root = str(tmp_path / "saved_models")
    result = export(trained_run, fmt, name="digits", root=root)
    folder = "digits" if fmt == "saved_model" else f"digits-{fmt}"
    assert result["path"].startswith(os.path.join(root, folder, "1"))
    model = load_model(trained_run)
    # Exports take the raw digits values (0..16) and normalise them (x / 16).
    raw = np.random.default_rng(5).integers(0, 17, (9, *model.inputs[0].shape[1:])).astype("uint8")
    outputs = run_exported(result["path"], fmt, raw)
    np.testing.assert_allclose(outputs["logits"], model.predict(raw / np.float32(16), verbose=0), atol=1e-5)
    # A second export goes to version 2; naming version 1 again is refused.
    assert export(trained_run, fmt, name="digits", root=root)["path"].startswith(os.path.join(root, folder, "2"))
    with pytest.raises(FileExistsError, match="already exists"):
        export(trained_run, fmt, name="digits", version=1, root=root)
    assert keras.backend.backend() == "tensorflow"


def test_saved_model_has_serving_signature_without_random_ops(trained_run, tmp_path):
    import tensorflow as tf

    path = export(trained_run, "saved_model", name="m", root=str(tmp_path))["path"]
    loaded = tf.saved_model.load(path)
    signature = loaded.signatures["serving_default"]
    assert list(signature.structured_input_signature[1]) == ["image"]
    graph_ops = {op.type for op in signature.graph.get_operations()}
    for function in signature.graph.as_graph_def().library.function:
        graph_ops |= {node.op for node in function.node_def}
    assert not any("Random" in op for op in graph_ops), sorted(graph_ops)
    assert "LeakyRelu" in graph_ops


def test_existing_run_dir_is_never_overwritten(trained_run, capsys):
    before = sorted(os.listdir(trained_run))
    assert cli.main(["train", *QUICK, "--run-dir", trained_run]) == 2
    assert "already exists" in capsys.readouterr().err
    assert sorted(os.listdir(trained_run)) == before


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--model", "resnet-1000"], "resnet-110"),
        (["train", "--dataset", "imagenet"], "cifar10"),
        (["train", "--recipe", "fast"], "quick"),
        (["train", "--p", "1.5"], "(0, 1]"),
        (["train", "--augment", "mixup"], "cutout"),
        (["train", "--dataset", "cifar10", "--data-dir", "/nonexistent-tfds"], "/nonexistent-tfds"),
        (["evaluate", "/nonexistent-run"], "neither a run directory"),
        (["export", "/nonexistent-run"], "neither a run directory"),
        (["train", "--resume", "--run-dir", "/nonexistent-run"], "no config.json"),
    ],
)
def test_bad_input_fails_early_with_the_choices(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "runs"), "nothing is created for a bad command"


def test_corrupt_checkpoint_is_reported(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    TrainConfig(model="simple-cnn", steps_per_epoch=5, run_dir=str(run)).save(run / rd.CONFIG)
    (run / rd.BACKUP).mkdir()
    for step in (2, 4):
        name = f"step-{step:09d}"
        (run / rd.BACKUP / f"{name}.weights.h5").write_bytes(b"not an h5 file")
        state = TrainingState(epoch=0, step=step, optimizer_steps=step, steps_per_epoch=5,
                              processes=1)
        rd.write_json(str(run / rd.BACKUP / f"{name}.json"), {
            **state.to_json(), "format": 1, "weights": f"{name}.weights.h5", "sha256": "0"})
    assert cli.main(["train", "--resume", "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert "No usable backup" in err and "step-000000004.weights.h5 is damaged" in err


def test_corrupt_model_file_is_reported(tmp_path, capsys):
    bad = tmp_path / "broken.keras"
    bad.write_bytes(b"garbage")
    assert cli.main(["evaluate", str(bad), "--dataset", "digits"]) == 2
    assert f"Model file {str(bad)!r} is corrupt or unreadable" in capsys.readouterr().err
    # Issue 25: a run's damaged checkpoint.keras was told "... or use the
    # run's checkpoint.keras", itself. Its backups write it again.
    run = tmp_path / "run"
    run.mkdir()
    TrainConfig(model="simple-cnn", run_dir=str(run)).save(run / rd.CONFIG)
    (run / rd.CHECKPOINT).write_bytes(b"garbage")
    assert cli.main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.endswith("the run's backups write it again when it resumes: dropact train --resume "
                        f"--run-dir {run}.\n") and rd.CHECKPOINT not in err.split("(")[-1]
    (run / rd.MODEL).write_bytes(b"garbage")
    assert cli.main(["evaluate", str(run)]) == 2
    assert f"move it away to use the run's {rd.CHECKPOINT}" in capsys.readouterr().err


def test_resume_after_sigkill_mid_epoch_is_the_uninterrupted_run(trained_run, tmp_path):
    # `trained_run`'s command, stopped (SIGSTOP) right after optimizer step
    # 6 (epoch 1, step 2 of 4; its last backup: step 5), then killed from
    # outside (SIGKILL to its process group). Resumed, it IS `trained_run`:
    # the same results record, the same weights bit for bit.
    run = str(tmp_path / "killed")
    argv = [sys.executable, "-m", "keras_dropact.cli", "train", *QUICK, "--seed", "3", "--deterministic",
            "--backup-every", "1", "--run-dir", run]
    env = {**os.environ, faults.ENV: "step:6@SIGSTOP", "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        wait_until_stopped(process)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert not os.path.exists(os.path.join(run, rd.RESULTS))
    assert Backups(os.path.join(run, rd.BACKUP)).latest() == 5
    results = train(TrainConfig(run_dir=run), resume=True, verbose=0)
    assert [row["epoch"] for row in results["history"]] == [0, 1]
    assert_same_run(run, trained_run)


def test_predict_prints_file_names_that_are_not_utf8(trained_run, tmp_path, monkeypatch):
    # A file name need not be UTF-8; printed as it was to a strict UTF-8
    # stdout (a pipe), it raised UnicodeEncodeError. It is backslash-escaped.
    import io

    import tensorflow as tf

    path = os.path.join(str(tmp_path), os.fsdecode(b"digit-\xff.png"))
    with open(path, "wb") as f:
        f.write(tf.io.encode_png(np.full((8, 8, 1), 128, np.uint8)).numpy())
    out = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(out, encoding="utf-8", errors="strict"))
    assert cli.main(["predict", trained_run, path, "--top-k", "1"]) == 0
    sys.stdout.flush()
    lines = out.getvalue().decode("utf-8").splitlines()
    assert lines[0] == os.path.join(str(tmp_path), "digit-\\xff.png")
    assert len(lines) == 2 and lines[1].endswith(")")


def test_commands_stopped_by_a_signal_say_so_in_one_line(monkeypatch, capsys):
    # A Ctrl-C in `evaluate`, `export`, `predict`, `recipes` (KeyboardInterrupt),
    # or a training run of `repro` stopped by SIGINT/SIGTERM (Interrupted),
    # ends with one line and 128 + the signal, not a traceback.
    import signal

    from keras_dropact import interrupts

    def stopped(error):
        def handler(args):
            raise error
        return handler

    monkeypatch.setattr(cli, "_recipes", stopped(KeyboardInterrupt()))
    assert cli.main(["recipes"]) == 130
    assert capsys.readouterr().err == "dropact recipes: interrupted by SIGINT.\n"
    monkeypatch.setattr(cli, "_recipes", stopped(interrupts.Interrupted(signal.SIGTERM, "at epoch 2.")))
    assert cli.main(["recipes"]) == 143
    assert capsys.readouterr().err == "dropact recipes: interrupted by SIGTERM at epoch 2.\n"
