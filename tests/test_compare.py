"""`dropact compare` (issue 24): arms x seeds of one training setup, a paired report.

Every comparison is simple-cnn on the offline digits set, 2 epochs of 3
steps of 32 examples, `--deterministic`, a backup at every step, two arms
(relu, the reference, and dropact:p=0.9) and two seeds: the reference
comparison is trained once, uninterrupted, and the others must end with
the same runs bit for bit.
"""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_dropact import cli
from keras_dropact.repro import compare
from keras_dropact.repro.stats import paired_difference
from keras_dropact.training import faults
from keras_dropact.training import run_dir as rd
from tests.conftest import assert_same_run
from tests.conftest import tensorflow_only
from tests.test_jax_training import JAX_CACHE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = ["--model", "simple-cnn", "--dataset", "digits", "--epochs", "2", "--steps-per-epoch", "3",
         "--batch-size", "32", "--backup-every", "1", "--deterministic", "--train-size", "1000"]
TRAIN_SIZE = 1000  # Of digits' 1437: the training error is measured on these.
ARMS = ["--arm", "relu", "--arm", "dropact:p=0.9"]
RUNS = [("relu", 0), ("dropact-p0.9", 0), ("relu", 1), ("dropact-p0.9", 1)]  # In training order.
T_975_1 = 12.7062  # Student's t, 97.5% quantile, 1 degree of freedom (two seeds).


def _compare(out, *extra, flags=FLAGS, arms=ARMS):
    return cli.main(["compare", *flags, *arms, "--seeds", "2", "--out", str(out), *extra])


def _json(path):
    with open(path) as f:
        return json.load(f)


def _run_dir(out, arm, seed):
    return os.path.join(out, arm, f"seed-{seed}")


def _dropact_lines(err):
    return [line for line in err.splitlines() if line.startswith("dropact")]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted comparison."""
    out = str(tmp_path_factory.mktemp("compare") / "reference")
    assert _compare(out) == 0
    return out


# --- arms, statistics: no training ------------------------------------------


def test_arms_are_parsed_to_one_name_each():
    assert compare.parse_arm("relu") == ("relu", "relu", None)
    assert compare.parse_arm("dropact") == ("dropact", "dropact", 0.95)
    assert compare.parse_arm("dropact:p=0.95") == ("dropact", "dropact", 0.95)
    assert compare.parse_arm("dropact:p=0.90") == ("dropact:p=0.9", "dropact", 0.9)
    assert compare.parse_arm("leaky_relu:p=0.8") == ("leaky_relu:p=0.8", "leaky_relu", 0.8)
    assert compare.arm_directory(compare.parse_arm("dropact:p=0.9")) == "dropact-p0.9"


def test_paired_difference_against_a_hand_computation():
    arm, reference = [0.10, 0.20, 0.15], [0.12, 0.19, 0.20]
    paired = paired_difference(arm, reference)
    differences = [-0.02, 0.01, -0.05]
    mean = sum(differences) / 3
    std = math.sqrt(sum((d - mean) ** 2 for d in differences) / 2)
    assert paired.difference.mean == pytest.approx(mean)
    assert paired.difference.std == pytest.approx(std)
    # t_{0.975, 2} = 4.3027
    assert paired.difference.half_width == pytest.approx(4.3027 * std / math.sqrt(3), rel=1e-4)
    assert (paired.lower, paired.ties, paired.difference.n) == (2, 0, 3)
    assert paired_difference([0.1, 0.2], [0.1, 0.3])[1:] == (1, 1)
    with pytest.raises(ValueError, match="the same length"):
        paired_difference([0.1, 0.2], [0.1])


BAD = [
    (["--arm", "dropact:p=2", "--arm", "relu"], "Invalid --arm 'dropact:p=2': p must be a number in (0, 1]"),
    (["--arm", "dropact:p=nan", "--arm", "relu"], "Invalid --arm 'dropact:p=nan'"),
    (["--arm", "gelu", "--arm", "relu"], "Unknown --arm 'gelu'; valid arms: dropact, relu, rrelu, leaky_relu"),
    (["--arm", "relu:p=0.5", "--arm", "dropact"], "Invalid --arm 'relu:p=0.5'"),
    (["--arm", "dropact:q=0.5", "--arm", "relu"], "Invalid --arm 'dropact:q=0.5'"),
    (["--arm", "relu", "--arm", "relu"], "--arm 'relu' repeats the arm 'relu'"),
    (["--arm", "dropact", "--arm", "dropact:p=0.95"], "--arm 'dropact:p=0.95' repeats the arm 'dropact'"),
    (["--arm", "relu"], "needs at least two --arm"),
    (["--arm", "relu", "--arm", "dropact", "--seeds", "0"], "--seeds must be in [1, 1000], got 0."),
    (["--arm", "relu", "--arm", "dropact", "--seeds", "1001"], "--seeds must be in [1, 1000], got 1001."),
    (["--arm", "relu", "--arm", "dropact", "--seed", "2147483647", "--seeds", "2"],
     "--seed 2147483647 and --seeds 2 give seeds up to 2147483648; the largest seed is 2147483647."),
    (["--arm", "relu", "--arm", "dropact", "--epochs", "0"], "--epochs must be in [1, 2147483647], got 0."),
    (["--arm", "relu", "--arm", "dropact", "--dataset", "nope"], "nope"),
    (["--arm", "relu", "--arm", "dropact", "--strategy", "multiworker"], "trains in one process"),
]


@tensorflow_only
@pytest.mark.parametrize("argv, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_and_writes_nothing(argv, message, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["compare", "--model", "simple-cnn", *argv, "--out", str(out)]) == 2
    lines = _dropact_lines(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith("dropact compare: error: ") and message in lines[0]
    assert not out.exists()


@tensorflow_only
def test_an_out_that_holds_something_else_is_refused(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("mine")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    for out, message in ((a_file, "is not a folder"), (other, "holds other files (notes.txt) and no compare.json")):
        assert cli.main(["compare", *ARMS, "--out", str(out)]) == 2
        lines = _dropact_lines(capsys.readouterr().err)
        assert len(lines) == 1 and message in lines[0]
    assert a_file.read_text() == "mine" and os.listdir(other) == ["notes.txt"]
    # The train flags that compare sets itself are not flags of compare.
    with pytest.raises(SystemExit) as exit_:
        cli.main(["compare", *ARMS, "--activation", "relu", "--out", str(other)])
    assert exit_.value.code == 2


# --- a comparison ------------------------------------------------------------


def _summary(values):
    """Mean and t half width of two values, by hand."""
    mean = (values[0] + values[1]) / 2
    return mean, T_975_1 * abs(values[0] - values[1]) / math.sqrt(2) / math.sqrt(2)


@pytest.mark.slow
@tensorflow_only
def test_the_report_holds_the_runs_numbers(reference):
    report = _json(os.path.join(reference, "report.json"))
    assert report["reference"] == "relu" and report["seeds"] == [0, 1] and report["diverged"] == []
    assert [arm["arm"] for arm in report["arms"]] == ["relu", "dropact:p=0.9"]
    runs = {}
    for arm, seed in RUNS:
        results = _json(os.path.join(_run_dir(reference, arm, seed), rd.RESULTS))
        evaluation = _json(os.path.join(_run_dir(reference, arm, seed), compare.TRAIN_EVALUATION))
        assert results["status"] == "finished" and results["config"]["seed"] == seed
        assert results["config"]["activation"] == arm.split("-")[0]
        runs[arm, seed] = dict(test_error=results["test_error"], train_error=evaluation["train_error"],
                               logged_train_error=1 - results["history"][-1]["accuracy"],
                               history=results["history"])
        runs[arm, seed]["gap"] = runs[arm, seed]["test_error"] - runs[arm, seed]["train_error"]
    relu, drop = report["arms"]
    for entry, name in ((relu, "relu"), (drop, "dropact-p0.9")):
        assert entry["n"] == 2
        for key in ("test_error", "train_error", "logged_train_error", "gap"):
            mean, half = _summary([runs[name, 0][key], runs[name, 1][key]])
            assert entry[key]["mean"] == pytest.approx(mean, abs=1e-12)
            assert entry[key]["half_width"] == pytest.approx(half, rel=1e-4)
        epochs = entry["curves"]["epoch"]
        assert epochs == [1, 2]
        for e in range(2):
            expected = np.mean([1 - runs[name, s]["history"][e]["val_accuracy"] for s in (0, 1)])
            assert entry["curves"]["test_error"][e] == pytest.approx(expected, abs=1e-12)
    assert relu["difference"] is None
    for key in ("test_error", "train_error", "gap"):
        differences = [runs["dropact-p0.9", s][key] - runs["relu", s][key] for s in (0, 1)]
        mean, half = _summary(differences)
        paired = drop["difference"][key]
        assert paired["mean"] == pytest.approx(mean, abs=1e-12)
        assert paired["half_width"] == pytest.approx(half, rel=1e-4)
        assert paired["n"] == 2 and paired["lower"] == sum(d < 0 for d in differences)
    text = open(os.path.join(reference, "report.md")).read()
    mean, half = _summary([runs["relu", s]["test_error"] for s in (0, 1)])
    assert f"| relu (reference) | 2 | {100 * mean:.2f} +- {100 * half:.2f} |" in text
    assert "## Paired differences to relu" in text
    assert os.path.getsize(os.path.join(reference, "learning_curves.png")) > 1000


@pytest.mark.slow
@tensorflow_only
def test_the_training_error_is_the_final_model_in_inference_mode_on_the_training_split(reference):
    import keras

    from keras_dropact import pipelines

    run = _run_dir(reference, "dropact-p0.9", 1)
    model = keras.saving.load_model(os.path.join(run, rd.MODEL), compile=False)
    assert pipelines.info("digits")["splits"]["train"] > TRAIN_SIZE
    images, labels = next(iter(pipelines.load("digits", "train", TRAIN_SIZE, shuffle=False,
                                              take=TRAIN_SIZE)))
    assert len(labels) == TRAIN_SIZE
    wrong = np.mean(np.argmax(model.predict(images, verbose=0), axis=-1) != np.asarray(labels))
    evaluation = _json(os.path.join(run, compare.TRAIN_EVALUATION))
    assert evaluation["examples"] == TRAIN_SIZE
    assert evaluation["train_error"] == pytest.approx(wrong, abs=1e-6)  # Keras averages in float32.


@pytest.mark.slow
@tensorflow_only
def test_a_changed_command_is_refused_and_other_arms_or_seeds_reuse_the_runs(reference, tmp_path, capsys):
    out = str(tmp_path / "copy")
    shutil.copytree(reference, out)
    before = {name: os.path.getmtime(os.path.join(out, name)) for name in ("compare.json", "report.json")}
    changed = [f if f != "3" else "4" for f in FLAGS]  # --steps-per-epoch 4
    assert _compare(out, flags=changed) == 2
    lines = _dropact_lines(capsys.readouterr().err)
    assert len(lines) == 1
    assert "holds a comparison of another configuration (--steps-per-epoch 3 there, 4 now)" in lines[0]
    assert {name: os.path.getmtime(os.path.join(out, name)) for name in before} == before
    # Another reference and one seed: the same runs, read back, none trained again.
    assert cli.main(["compare", *FLAGS, "--arm", "dropact:p=0.9", "--arm", "relu", "--seeds", "1",
                     "--out", out]) == 0
    assert capsys.readouterr().out.count("done before, skipped") == 2
    report = _json(os.path.join(out, "report.json"))
    assert report["reference"] == "dropact:p=0.9" and report["seeds"] == [0]
    relu = _json(os.path.join(reference, "report.json"))["arms"][0]["runs"][0]
    assert report["arms"][1]["runs"] == [relu]
    # A run folder of another configuration is refused before anything is trained.
    results_path = os.path.join(_run_dir(out, "relu", 1), rd.RESULTS)
    results = _json(results_path)
    results["config"]["epochs"] = 3
    with open(results_path, "w") as f:
        json.dump(results, f)
    assert _compare(out) == 2
    lines = _dropact_lines(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].endswith(
        "relu/seed-1 holds a run of another configuration (epochs: 3 there, 2 asked); use another --out.")


@tensorflow_only
def test_a_start_killed_before_config_json_is_cleared_and_other_files_are_refused(tmp_path):
    started = tmp_path / "started"
    started.mkdir()
    for name in (rd.LOCK, "dataset.json", "dataset.json.tmp-123"):
        (started / name).write_text("")
    compare._discard_unstarted(str(started))
    assert not started.exists()
    compare._discard_unstarted(str(started))  # Nothing there: nothing to do.
    started.mkdir()
    (started / "dataset.json").write_text("")
    (started / "notes.txt").write_text("mine")
    with pytest.raises(RuntimeError, match="holds no config.json, so no run this comparison started"):
        compare._discard_unstarted(str(started))
    assert sorted(os.listdir(started)) == ["dataset.json", "notes.txt"]


@pytest.mark.slow
@tensorflow_only
def test_sigkill_then_rerun_skips_finished_runs_and_ends_as_the_uninterrupted_one(reference, tmp_path, capsys):
    out = str(tmp_path / "killed")
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_dropact.cli", "compare", *FLAGS, *ARMS, "--seeds", "2", "--out", out],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow"},
    )
    try:
        # Kill once a run has finished and a later one is half-way (it has a backup).
        while True:
            done = [r for r in RUNS if os.path.exists(os.path.join(_run_dir(out, *r), compare.TRAIN_EVALUATION))]
            half = [r for r in RUNS if r not in done and os.path.isdir(os.path.join(_run_dir(out, *r), rd.BACKUP))
                    and os.listdir(os.path.join(_run_dir(out, *r), rd.BACKUP))
                    and not os.path.exists(os.path.join(_run_dir(out, *r), rd.RESULTS))]
            if done and half:
                break
            assert process.poll() is None, "the comparison ended before it could be killed"
            time.sleep(0.01)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    stamps = {r: os.stat(os.path.join(_run_dir(out, *r), rd.RESULTS)).st_mtime_ns for r in done}
    capsys.readouterr()
    assert _compare(out) == 0
    printed = capsys.readouterr().out
    assert printed.count("done before, skipped") == len(done)
    assert printed.count("resuming from its last backup") == 1
    assert stamps == {r: os.stat(os.path.join(_run_dir(out, *r), rd.RESULTS)).st_mtime_ns for r in done}
    for run in RUNS:
        assert_same_run(_run_dir(out, *run), _run_dir(reference, *run))
    mine, theirs = (_json(os.path.join(o, "report.json"))["arms"] for o in (out, reference))
    assert mine == theirs


@pytest.mark.slow
@tensorflow_only
def test_sigterm_stops_with_one_line_and_128_plus_the_signal(tmp_path, capsys, monkeypatch):
    out = tmp_path / "stopped"
    monkeypatch.setenv(faults.ENV, "step:2@SIGTERM")
    assert _compare(out) == 128 + signal.SIGTERM
    lines = _dropact_lines(capsys.readouterr().err)
    assert lines[-1] == ("dropact compare: interrupted by SIGTERM in run 1 of 4 (relu, seed 0). Rerun the "
                         "same command to continue: finished runs are kept, this one goes on from its "
                         "last backup.")
    first = _run_dir(out, "relu", 0)
    assert os.listdir(os.path.join(first, rd.BACKUP)) and not os.path.exists(os.path.join(first, rd.RESULTS))
    assert not os.path.exists(os.path.join(out, "report.json"))


@pytest.mark.slow
def test_the_jax_backend_and_a_strategy(tmp_path):
    pytest.importorskip("jax")
    out = tmp_path / "jax"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "jax",
           "JAX_COMPILATION_CACHE_DIR": JAX_CACHE}
    result = subprocess.run(
        [sys.executable, "-m", "keras_dropact.cli", "compare", "--backend", "jax", "--strategy",
         "data-parallel", "--model", "simple-cnn", "--dataset", "digits", "--epochs", "1",
         "--steps-per-epoch", "2", "--batch-size", "32", "--arm", "relu", "--arm", "leaky_relu:p=0.9",
         "--seeds", "1", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = _json(out / "report.json")
    assert report["backend"] == "jax" and [a["n"] for a in report["arms"]] == [1, 1]
    results = _json(out / "leaky_relu-p0.9" / "seed-0" / rd.RESULTS)
    assert results["versions"]["keras_backend"] == "jax"
    assert results["distribution"]["strategy"] == "data-parallel"
    assert report["arms"][1]["test_error"]["mean"] == results["test_error"]
    assert f"| leaky_relu:p=0.9 | 1 | {100 * results['test_error']:.2f} |" in (out / "report.md").read_text()
