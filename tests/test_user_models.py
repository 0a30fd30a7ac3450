"""`dropact train --model` for models that are not presets (issue 26):
keras.applications.NAME, a `.keras` file, `package.module:function`
(`keras_dropact.training.user_models`; docs/guides/your-model.md).

The builder module of these tests is written into a temporary folder and
imported from there (`PYTHONPATH` for the killed subprocess). Runs are tiny:
a 4-filter CNN on digits, a few steps; MobileNetV2 (alpha 0.35) trains one
step on a folder of 32x32 RGB images (converted) and on digits read at 32x32
(as it is).
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_dropact import DropActivation
from keras_dropact import cli
from keras_dropact.repro import compare
from keras_dropact.training import faults
from keras_dropact.training import run_dir as rd
from keras_dropact.training import user_models
from keras_dropact.training.artifacts import load_model
from keras_dropact.training.config import TrainConfig
from keras_dropact.training.export import export
from tests.conftest import assert_same_run
from tests.conftest import tensorflow_only

pytestmark = tensorflow_only

MODULE = "dropact_test_builders"
BUILDERS = '''
import keras


def tiny(input_shape, num_classes, width=4):
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(width, 3, strides=2, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(x))


def softmax(input_shape, num_classes):
    inputs = keras.Input(input_shape)
    x = keras.layers.Flatten()(keras.layers.ReLU()(inputs))
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))


def not_a_model(input_shape, num_classes):
    return "a model"
'''
TINY = f"{MODULE}:tiny"
# The run of the kill/resume test: digits read at 16x16 with 3 channels.
RUN_FLAGS = ["--model", TINY, "--model-kwargs", '{"width": 4}', "--dataset", "digits",
             "--image-size", "16", "--channels", "3", "--epochs", "2", "--steps-per-epoch", "3",
             "--batch-size", "16", "--backup-every", "2", "--deterministic", "--seed", "2"]


@pytest.fixture(scope="module")
def builders(tmp_path_factory):
    """The folder of the builder module, on sys.path for the module's tests."""
    folder = tmp_path_factory.mktemp("builders")
    (folder / f"{MODULE}.py").write_text(textwrap.dedent(BUILDERS))
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))
    sys.modules.pop(MODULE, None)


def _fails(argv, capsys, *expected, run=None):
    """`dropact ARGV` exits 2 with one line holding `expected`; no run directory."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dropact {argv[0]}: error: ") and len(err.strip().splitlines()) == 1, err
    for text in expected:
        assert text in err, (text, err)
    assert run is None or not os.path.exists(run)
    return err


def _drop_activations(model):
    return [layer for layer in model.layers if isinstance(layer, DropActivation)]


def test_model_names_are_told_apart():
    assert [user_models.kind(name) for name in (
        "resnet-20", "keras.applications.MobileNetV2", "my/model.keras", "pkg.mod:build", "pkg.mod",
    )] == ["preset", "application", "file", "function", None]
    assert [user_models.label(name) for name in (
        "keras.applications.MobileNetV2", "runs/m.keras", "pkg.mod:build", "resnet-20",
    )] == ["MobileNetV2", "m", "build", "resnet-20"]


def test_models_that_do_not_fit_are_one_line(builders, tmp_path, capsys):
    run = str(tmp_path / "run")
    base = ["train", "--run-dir", run, "--epochs", "1", "--steps-per-epoch", "1"]
    _fails([*base, "--model", "keras.applications.MobileNetV2"], capsys,
           "needs images of at least 32x32 pixels; digits gives 8x8: read them larger with "
           "--image-size 32 (or more).", run=run)
    _fails([*base, "--model", "keras.applications.MobileNetV9"], capsys,
           "Unknown model 'keras.applications.MobileNetV9'; keras.applications has ConvNeXtBase",
           run=run)
    _fails([*base, "--model", f"{MODULE}:softmax"], capsys, "ends in a softmax", run=run)
    _fails([*base, "--model", f"{MODULE}:not_a_model"], capsys, "returned str, not a keras.Model",
           run=run)
    _fails([*base, "--model", "nowhere_at_all:build"], capsys,
           "cannot find the module 'nowhere_at_all'", run=run)
    _fails([*base, "--model", TINY, "--model-kwargs", '{"depth": 3}'], capsys,
           "unexpected keyword argument 'depth'", run=run)
    _fails([*base, "--model", TINY, "--convert-activation", "gelu"], capsys,
           "found no activation 'gelu'", "it has relu x2", "--activation relu.", run=run)
    _fails([*base, "--model", TINY, "--activation", "rrelu"], capsys,
           "Activation 'rrelu' is for presets", run=run)
    _fails([*base, "--model", TINY, "--model-kwargs", '{"num_classes": 3}'], capsys,
           "--model-kwargs may not set num_classes", run=run)
    _fails([*base, "--weights", "w.weights.h5"], capsys,
           "--weights is for keras.applications, .keras and module:function models, not "
           "--model resnet-20.", run=run)
    keras_file = str(tmp_path / "rgb16.keras")
    keras.saving.save_model(user_models.base_model(TrainConfig(model=TINY), (16, 16, 3), 10), keras_file)
    _fails([*base, "--model", keras_file], capsys,
           f"--model {keras_file} does not fit --dataset digits: the data are (8, 8, 1) in 10 "
           "classes", "the model takes (16, 16, 3) and gives (10,); read the images as it takes "
           "them with --image-size 16 --channels 3.", run=run)


def test_weights_files_are_loaded_and_checked(builders, tmp_path):
    source = user_models.base_model(TrainConfig(model=TINY, seed=5), (8, 8, 1), 10)
    path = str(tmp_path / "start.weights.h5")
    source.save_weights(path)
    config = TrainConfig(model=TINY, weights=path)
    loaded = user_models.base_model(config, (8, 8, 1), 10)
    for mine, theirs in zip(loaded.get_weights(), source.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    with pytest.raises(ValueError, match=r"do not fit --model dropact_test_builders:tiny as built"):
        user_models.base_model(TrainConfig(model=TINY, weights=path, model_kwargs={"width": 8}),
                               (8, 8, 1), 10)


def test_compare_trains_relu_as_it_is_and_dropact_converted(builders, tmp_path, capsys):
    plan = compare.Plan({"model": TINY}, ["relu", "dropact"], 1, str(tmp_path / "cmp"))
    (model, sites), (converted, count) = [
        user_models.build(plan.config(arm, 0), (8, 8, 1), 10, 5e-4) for arm in plan.arms]
    assert sites is None and not _drop_activations(model)
    assert count == 2 and [layer.name for layer in _drop_activations(converted)] == ["conv_dropact", "relu"]
    # The recipe's weight decay, PyTorch-style (l2 = weight_decay / 2), in the layers' configs.
    assert converted.get_layer("conv").kernel_regularizer.l2 == pytest.approx(2.5e-4)
    assert converted.get_layer("bn").gamma_regularizer.l2 == pytest.approx(2.5e-4)
    digest = user_models.digests(TINY)["model_sha256"]
    assert plan.record["training"]["model_sha256"] == digest
    # The builder changed since the comparison started: refused, naming the digests.
    os.makedirs(plan.out)
    with open(os.path.join(plan.out, compare.RECORD), "w") as f:
        json.dump(plan.record, f)
    module = builders / f"{MODULE}.py"
    source = module.read_text()
    module.write_text(source + "# changed\n")
    try:
        with pytest.raises(ValueError, match=rf"another configuration \(model_sha256 '{digest}' there, '[0-9a-f]{{64}}' now\)"):
            compare.Plan({"model": TINY}, ["relu", "dropact"], 1, plan.out)
    finally:
        module.write_text(source)
    _fails(["compare", "--model", TINY, "--arm", "relu", "--arm", "rrelu", "--out",
            str(tmp_path / "other")], capsys, "Activation 'rrelu' is for presets")


@pytest.mark.slow
def test_mobilenetv2_trains_on_digits_read_at_32x32(tmp_path):
    """`--dataset digits --image-size 32` (8x8 is refused:
    `test_models_that_do_not_fit_are_one_line`): converted, its 35 ReLU6
    sites are Drop-Activations; one step of it as it is (`--activation relu`:
    the converted model's training is `test_mobilenetv2_trains_on_a_folder...`,
    whose graph took a minute to trace on 2 CPU cores) reads the digits at 32x32."""
    from keras_dropact import pipelines

    config = TrainConfig(model="keras.applications.MobileNetV2", model_kwargs={"alpha": 0.35},
                         convert_activation="relu6", image_size=32)
    info = pipelines.info("digits", **config.reading())
    model, converted = user_models.build(config, info["shape"], info["num_classes"])
    assert converted == 35 == len(_drop_activations(model))
    assert tuple(model.inputs[0].shape[1:]) == (32, 32, 1)
    run = str(tmp_path / "run")
    assert cli.main(["train", "--model", config.model, "--model-kwargs", '{"alpha": 0.35}',
                     "--activation", "relu", "--dataset", "digits", "--image-size", "32",
                     "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "4",
                     "--train-size", "8", "--run-dir", run]) == 0
    with open(os.path.join(run, rd.RESULTS)) as f:
        results = json.load(f)
    assert results["status"] == "finished" and results["optimizer_steps"] == 1
    assert "converted_sites" not in results and results["config"]["image_size"] == [32, 32]
    trained = load_model(run)
    assert tuple(trained.inputs[0].shape[1:]) == (32, 32, 1) and not _drop_activations(trained)


@pytest.mark.slow
def test_mobilenetv2_trains_on_a_folder_of_32x32_rgb_images(tmp_path, capsys):
    from tests.test_export import encode_png

    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    for name in ("cat", "dog"):
        (data / name).mkdir(parents=True)
        for i in range(5):
            (data / name / f"{i}.png").write_bytes(encode_png(rng.integers(0, 256, (32, 32, 3), "uint8")))
    run = str(tmp_path / "run")
    argv = ["train", "--model", "keras.applications.MobileNetV2", "--model-kwargs", '{"alpha": 0.35}',
            "--convert-activation", "relu6", "--dataset", f"folder:{data}", "--epochs", "1",
            "--steps-per-epoch", "1", "--batch-size", "4", "--run-dir", run]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert "keras.applications.MobileNetV2: 35 activation site(s) of relu6 converted" in captured.err
    with open(os.path.join(run, rd.RESULTS)) as f:
        results = json.load(f)
    assert results["converted_sites"] == 35 and results["status"] == "finished"
    assert results["config"]["model_kwargs"] == {"alpha": 0.35}
    model = load_model(run)
    assert len(_drop_activations(model)) == 35 and tuple(model.inputs[0].shape[1:]) == (32, 32, 3)
    assert {layer.activation for layer in _drop_activations(model)} == {"relu6"}


@pytest.mark.slow
def test_a_keras_file_stopped_resumes_bit_identical_and_a_changed_file_is_refused(
        builders, tmp_path, capsys, monkeypatch):
    """A `.keras` model trained with `--strategy mirrored` and stopped mid-run
    (SIGTERM after optimizer step 3 of 4, in this process) is refused while its file is another, and resumed from
    the file it started from ends bit-identical to an uninterrupted run."""
    keras_file = tmp_path / "mine.keras"
    keras.saving.save_model(user_models.base_model(TrainConfig(model=TINY), (8, 8, 1), 10), keras_file)
    original = keras_file.read_bytes()
    stopped, reference = str(tmp_path / "stopped"), str(tmp_path / "reference")
    flags = ["train", "--model", str(keras_file), "--epochs", "2", "--steps-per-epoch", "2",
             "--batch-size", "16", "--backup-every", "1", "--deterministic", "--strategy", "mirrored"]
    monkeypatch.setenv(faults.ENV, "step:3@SIGTERM")
    assert cli.main([*flags, "--run-dir", stopped]) == 128 + signal.SIGTERM
    monkeypatch.delenv(faults.ENV)
    assert "mine.keras: 2 activation site(s) of relu converted" in capsys.readouterr().err
    with open(os.path.join(stopped, rd.CONFIG)) as f:
        assert json.load(f)["model_sha256"] == hashlib.sha256(original).hexdigest()
    keras.saving.save_model(user_models.base_model(TrainConfig(model=TINY, seed=1), (8, 8, 1), 10),
                            keras_file)
    before = sorted(os.listdir(stopped))
    _fails(["train", "--resume", "--run-dir", stopped], capsys,
           f"--model {str(keras_file)!r} changed since run {stopped!r} started (SHA-256 ")
    assert sorted(os.listdir(stopped)) == before and not os.path.exists(os.path.join(stopped, rd.RESULTS))
    keras_file.write_bytes(original)
    assert cli.main(["train", "--resume", "--run-dir", stopped]) == 0
    assert cli.main([*flags, "--run-dir", reference]) == 0
    assert_same_run(stopped, reference)


def _launch_killed(run, folder):
    """The run of RUN_FLAGS in a subprocess that SIGKILLs itself after step 4."""
    env = {**os.environ, faults.ENV: "step:4", "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": "tensorflow",
           "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "keras_dropact.cli", "train", *RUN_FLAGS,
                             "--run-dir", run], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_builder_model_killed_resumes_bit_identical_exports_and_predicts(builders, tmp_path, capsys):
    from tests.test_export import encode_png

    killed, reference = str(tmp_path / "killed"), str(tmp_path / "reference")
    process = _launch_killed(killed, builders)
    assert cli.main(["train", *RUN_FLAGS, "--run-dir", reference, "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert cli.main(["train", *RUN_FLAGS, "--run-dir", reference]) == 0
    _, err = process.communicate(timeout=600)
    assert process.returncode == -9, err[-2000:]
    assert not os.path.exists(os.path.join(killed, rd.RESULTS))
    with open(os.path.join(reference, rd.CONFIG)) as f:
        assert json.load(f) == printed  # --print-config prints what the run records.
    assert cli.main(["train", "--resume", "--run-dir", killed]) == 0
    assert_same_run(killed, reference)
    with open(os.path.join(killed, rd.RESULTS)) as f:
        results = json.load(f)
    assert results["converted_sites"] == 2
    capsys.readouterr()
    assert cli.main(["evaluate", killed]) == 0
    assert json.loads(capsys.readouterr().out)["test_error"] == pytest.approx(results["test_error"])
    exported = export(killed, "saved_model", name="tiny", root=str(tmp_path / "models"))
    assert exported["max_abs_difference"] <= 1e-5
    image = tmp_path / "digit.png"
    image.write_bytes(encode_png(np.full((8, 8, 1), 200, "uint8")))
    answers = []
    for source in (killed, exported["path"]):
        assert cli.main(["predict", source, str(image), "--json", "--top-k", "1"]) == 0
        answers.append(json.loads(capsys.readouterr().out)[0]["predictions"])
    (mine,), (served,) = answers  # The same serve_image_bytes, in memory and exported.
    assert mine["class_id"] == served["class_id"]
    assert mine["probability"] == pytest.approx(served["probability"], abs=1e-5)
