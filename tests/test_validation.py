"""Bad input is rejected up front: one line naming the bad value and the fix, no run directory.

Each case calls `dropact train` (`cli.main`) and checks exit status 2, the
message on stderr, and that the run directory does not exist afterwards, so
the corrected command can use the same `--run-dir`. Nothing here trains.
"""

import os
import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_dropact import cli
from keras_dropact import models
from keras_dropact import pipelines
from keras_dropact.pipelines import tfds_source
from keras_dropact.training.config import TrainConfig
from keras_dropact.training.train import train
from keras_dropact.training.validate import validate
from tests.conftest import tensorflow_only

pytestmark = tensorflow_only

QUICK = ["--model", "simple-cnn", "--dataset", "digits", "--epochs", "1", "--steps-per-epoch", "1"]


def _train_fails(argv, tmp_path, capsys, *expected):
    """Runs `dropact train ARGV --run-dir RUN`; returns stderr after checking it."""
    run = tmp_path / "run"
    assert cli.main(["train", *argv, "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dropact train: error: "), err
    for text in expected:
        assert text in err, (text, err)
    assert not run.exists(), "a bad command must create no run directory"
    return err


def _one_line(err):
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--lr", "0"], ["--lr must be a positive learning rate, e.g. --lr 0.1; got 0.0"]),
        (["--lr", "-0.1"], ["--lr must be a positive learning rate", "-0.1"]),
        (["--lr", "nan"], ["--lr must be a positive learning rate", "nan"]),
        # Issue 25: float32 held it as infinity; the schedule cannot hold it at all.
        (["--lr", "1e300"], ["--lr 1e+300 is more than float32, in which the optimizer computes, "
                             "holds (3.402823e+38); e.g. --lr 0.1."]),
        (["--weight-decay=-1e-4"], ["--weight-decay must be a weight decay >= 0", "-0.0001"]),
        (["--dropout", "1"], ["--dropout must be a dropout rate in [0, 1)", "got 1.0"]),
        (["--dropout", "-0.1"], ["--dropout must be a dropout rate in [0, 1)", "got -0.1"]),
        (["--epochs", "0"], ["--epochs must be in [1, 2147483647], got 0"]),
        (["--batch-size", "-8"], ["--batch-size must be in [1, 2147483647], got -8"]),
        (["--steps-per-epoch", "0"], ["--steps-per-epoch must be in [1, 2147483647], got 0"]),
        (["--backup-every", "0"], ["--backup-every must be in [1, 2147483647], got 0"]),
        (["--train-size", "0"], ["--train-size must be in [1, 2147483647], got 0"]),
        (["--train-size", str(2**31)], ["--train-size must be in [1, 2147483647], got 2147483648."]),
        # Issue 25: TensorFlow's "Can't convert Python sequence with
        # out-of-range integer to Tensor." after the run directory was made.
        (["--batch-size", "100000000000000000000"],
         ["--batch-size must be in [1, 2147483647], got 100000000000000000000."]),
        (["--epochs", str(2**31)], ["--epochs must be in [1, 2147483647], got 2147483648."]),
        (["--steps-per-epoch", str(2**63)], ["--steps-per-epoch must be in [1, 2147483647]"]),
        (["--backup-every", str(2**64)], ["--backup-every must be in [1, 2147483647]"]),
        (["--seed", "-1"], ["--seed must be in [0, 2147483647], got -1"]),
        (["--seed", str(2**40)], ["--seed must be in [0, 2147483647]"]),
        (["--p", "0"], ["(0, 1]"]),
        (["--strategy", "tpu"], ["Unknown strategy 'tpu'", "mirrored"]),
        (["--augment", "mixup"], ["Unknown augmentation 'mixup'", "cutout"]),
        (["--model", "resnet-1000"], ["Unknown model 'resnet-1000'", "resnet-110"]),
        (["--dataset", "imagenet"], ["Unknown dataset 'imagenet'", "cifar10"]),
    ],
)
def test_impossible_values_are_rejected(flags, expected, tmp_path, capsys):
    _one_line(_train_fails([*QUICK, *flags], tmp_path, capsys, *expected))


def test_augmentations_are_listed_once(tmp_path, capsys):
    """Issue 20: the list read "Valid augmentations: none, none, standard, ..."."""
    err = _train_fails([*QUICK, "--augment", "mixup"], tmp_path, capsys)
    assert err.strip().endswith("Unknown augmentation 'mixup'. Valid augmentations: none, standard, cutout, autoaugment.")


def test_image_size_is_for_images_and_positive(tmp_path, capsys):
    # Issue 26: any image dataset is read at another size (and channels); 1-D signals are not.
    _one_line(_train_fails(
        ["--model", "mnist1d-mlp", "--dataset", "mnist1d", "--image-size", "8"], tmp_path, capsys,
        "--image-size and --channels are for images; 'mnist1d' holds 1-D signals of shape 40x1.",
    ))
    _one_line(_train_fails(
        [*QUICK, "--dataset", "cifar10", "--channels", "1"], tmp_path, capsys,
        "--channels 1: 'cifar10' is normalised per RGB channel (mean (0.4914, 0.4822, 0.4465)), "
        "which gray images have no statistics for.",
    ))
    assert pipelines.info("digits", image_size=[12, 10], channels=3)["shape"] == (12, 10, 3)
    for text in ("0", "8x", "axb", "1x2x3", "-4"):
        with pytest.raises(SystemExit) as exit_status:
            cli.main(["train", *QUICK, "--image-size", text, "--run-dir", str(tmp_path / "run")])
        assert exit_status.value.code == 2
        err = capsys.readouterr().err
        assert "argument --image-size: --image-size must be a positive size in pixels, N or HEIGHTxWIDTH" in err
        assert f"got {text!r}." in err
    assert not (tmp_path / "run").exists()
    assert TrainConfig(dataset="folder:x", image_size=(32, 24)).image_size == [32, 24]
    with pytest.raises(ValueError, match=r"--image-size must be .* got \[32, 0\]"):
        TrainConfig(dataset="folder:x", image_size=[32, 0])


def test_config_rejects_wrong_types():
    with pytest.raises(ValueError, match=r"--seed must be an integer, got 1.5"):
        TrainConfig(seed=1.5)
    with pytest.raises(ValueError, match=r"--epochs must be an integer, got True"):
        TrainConfig(epochs=True)
    with pytest.raises(ValueError, match=r"mixed_precision must be True or False, got 'yes'"):
        TrainConfig(mixed_precision="yes")
    with pytest.raises(ValueError, match=r"--lr must be a positive learning rate.*'0.1'"):
        TrainConfig(lr="0.1")
    with pytest.raises(ValueError, match=r"^Unknown momentum convention 'torch'. Valid conventions: "
                                         r"pytorch, keras.$"):
        TrainConfig(momentum_convention="torch")
    assert TrainConfig(lr=0.1, weight_decay=0, dropout=0, seed=2**31 - 1).lr == 0.1


@pytest.mark.parametrize(
    "flags, expected",
    [
        # The MLP takes flat vectors; digits are 8x8x1 images.
        (["--model", "mlp", "--dataset", "digits"],
         ["--model mlp does not fit --dataset digits", "takes flat vectors", "(8, 8, 1)",
          "presets that take them: resnet-20"]),
        # MNIST-1D signals are (40, 1): the 1-D presets take them.
        (["--model", "resnet-20", "--dataset", "mnist1d"],
         ["--model resnet-20 does not fit --dataset mnist1d", "(40, 1)", "presets that take them: simple-cnn-1d, mnist1d-mlp, mnist1d-cnn"]),
        # Only the Wide ResNets have dropout.
        (["--model", "resnet-20", "--dropout", "0.3"],
         ["Dropout 0.3 (from --dropout) needs a model with dropout (wrn-28-10", "'resnet-20' has none"]),
    ],
)
def test_model_and_dataset_must_fit(flags, expected, tmp_path, capsys):
    argv = ["--dataset", "digits", "--epochs", "1", *flags]
    _one_line(_train_fails(argv, tmp_path, capsys, *expected))


def test_global_batch_must_split_over_the_replicas():
    config = TrainConfig(model="simple-cnn", dataset="digits", batch_size=30)
    with pytest.raises(ValueError, match=r"--batch-size 30 .* 4 replicas; use a multiple of 4, e.g. --batch-size 32\."):
        validate(config, num_replicas=4)
    validate(config, num_replicas=3)


def _flatten_builder(config, info, recipe):
    import keras

    inputs = keras.Input(info["shape"])
    return keras.Model(inputs, keras.layers.Dense(info["num_classes"])(keras.layers.Flatten()(inputs)))


def test_image_augmentation_on_signals_is_rejected_before_the_run_dir(tmp_path):
    run = tmp_path / "run"
    config = TrainConfig(model="flat", dataset="mnist1d", augment="standard", epochs=1, run_dir=str(run))
    with pytest.raises(ValueError, match="needs images; 'mnist1d'.*--augment none"):
        train(config, verbose=0, model_builder=_flatten_builder)
    assert not run.exists()


# Image folders -------------------------------------------------------------


def _write_png(path, value=0, shape=(6, 5, 3)):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tf.io.encode_png(np.full(shape, value, np.uint8)).numpy())


def _split_folder(root, train_classes=("ant", "bee"), test_classes=("ant", "bee"), per_class=2):
    for split, classes in (("train", train_classes), ("test", test_classes)):
        for name in classes:
            for i in range(per_class):
                _write_png(root / split / name / f"{i}.png", 10 * i)
    return root


def test_good_folder_passes(tmp_path):
    data = _split_folder(tmp_path / "data")
    pipelines.ensure_available(f"folder:{data}")
    assert pipelines.info(f"folder:{data}")["splits"] == {"train": 4, "test": 4}


def test_images_too_small_for_the_model(tmp_path, capsys):
    data = _split_folder(tmp_path / "data")  # 6x5 images.
    _one_line(_train_fails(
        ["--model", "simple-cnn", "--dataset", f"folder:{data}"], tmp_path, capsys,
        f"--model simple-cnn does not fit --dataset folder:{data}: Model 'simple-cnn' needs "
        "images of at least 8x8 pixels (it halves them 3 times), not 6x5",
    ))
    with pytest.raises(ValueError, match="at least 4x4 pixels"):
        models.check_build("densenet-bc-100-12", input_shape=(2, 2, 3))
    models.check_build("densenet-bc-100-12", input_shape=(4, 4, 3))
    models.check_build("resnet-20", input_shape=(1, 1, 3))


def test_folder_with_one_class(tmp_path, capsys):
    data = _split_folder(tmp_path / "data", ("ant",), ("ant",))
    _one_line(_train_fails(
        ["--model", "resnet-20", "--dataset", f"folder:{data}"], tmp_path, capsys,
        f"folder:{data}: found only the class folder 'ant'", "needs at least 2 class sub-folders",
    ))


def test_folder_with_an_empty_test_split(tmp_path, capsys):
    data = _split_folder(tmp_path / "data")
    for image in (data / "test").rglob("*.png"):
        image.unlink()
    _one_line(_train_fails(
        ["--model", "resnet-20", "--dataset", f"folder:{data}"], tmp_path, capsys,
        "class folder(s) ant, bee in 'test/' hold no images", "add images or remove",
    ))


def test_folder_with_classes_only_in_test(tmp_path, capsys):
    data = _split_folder(tmp_path / "data", ("ant", "bee"), ("ant", "bee", "cat"))
    _one_line(_train_fails(
        ["--model", "resnet-20", "--dataset", f"folder:{data}"], tmp_path, capsys,
        "train/ and test/ must hold the same class folders", "only in train/: none; only in test/: cat",
    ))


def test_folder_with_train_but_no_test(tmp_path, capsys):
    data = _split_folder(tmp_path / "data")
    for image in (data / "test").rglob("*.png"):
        image.unlink()
    for folder in sorted((data / "test").rglob("*"), reverse=True) + [data / "test"]:
        folder.rmdir()
    _one_line(_train_fails(
        ["--model", "resnet-20", "--dataset", f"folder:{data}"], tmp_path, capsys,
        "has a train/ sub-folder but no test/",
    ))


def test_class_folder_layout_too_small_for_a_test_split(tmp_path, capsys):
    data = tmp_path / "data"
    for name in ("ant", "bee"):
        for i in range(2):
            _write_png(data / name / f"{i}.png")
    _one_line(_train_fails(
        ["--model", "resnet-20", "--dataset", f"folder:{data}"], tmp_path, capsys,
        "4 image(s) leave the test split empty",
    ))


@pytest.mark.parametrize("damage", ["garbage", "truncated", "first"])
def test_undecodable_image_is_named(damage, tmp_path, capsys):
    data = _split_folder(tmp_path / "data", per_class=3)
    # "first" damages the image that fixes the shape; the others a later one.
    bad = data / "train" / "ant" / "0.png" if damage == "first" else data / "test" / "bee" / "2.png"
    good = tf.io.encode_png(np.arange(6 * 5 * 3, dtype=np.uint8).reshape(6, 5, 3)).numpy()
    bad.write_bytes(b"this is not an image" if damage == "garbage" else good[: len(good) // 2])
    _one_line(_train_fails(
        ["--model", "resnet-20", "--dataset", f"folder:{data}"], tmp_path, capsys,
        f"cannot decode image '{bad}'", "Replace or delete the file(s).",
    ))


# TFDS without network ------------------------------------------------------


def _files_under(root):
    return sorted(str(p) for p in root.rglob("*"))


def test_tfds_dataset_offline_fails_fast_and_writes_nothing(tmp_path, capsys, monkeypatch):
    home, default_dir, temp = tmp_path / "home", tmp_path / "tfds-default", tmp_path / "tmp"
    home.mkdir()
    temp.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setattr(tfds.core.constants, "DATA_DIR", str(default_dir), raising=False)
    monkeypatch.setenv("TFDS_DATA_DIR", str(default_dir))
    probes = []

    def offline(host, port, timeout=tfds_source.REACHABLE_TIMEOUT):
        probes.append((host, port))
        return False

    def no_download(*args, **kwargs):
        raise AssertionError("no download may be attempted offline")

    monkeypatch.setattr(tfds_source, "is_reachable", offline)
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_download)
    monkeypatch.chdir(tmp_path)
    before = _files_under(tmp_path)
    err = _train_fails(
        ["--model", "resnet-20", "--dataset", "cifar10"], tmp_path, capsys,
        "Dataset 'cifar10' (TFDS 'cifar10') is not prepared in data_dir",
        "cannot be downloaded (www.cs.toronto.edu does not answer: no network?)",
        '(docs/guides/datasets.md, "TFDS data without network")',
        "tfds build cifar10",
    )
    first_line = err.splitlines()[0]
    assert "no network" in first_line and "--data-dir" in first_line
    assert probes == [("www.cs.toronto.edu", 443)]
    assert _files_under(tmp_path) == before, "nothing may be written"


def test_tfds_data_dir_never_downloads(tmp_path, capsys, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("no download with --data-dir")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", no_download)
    data_dir = tmp_path / "tfds"
    data_dir.mkdir()
    _train_fails(
        ["--model", "resnet-20", "--dataset", "svhn", "--data-dir", str(data_dir)], tmp_path, capsys,
        f"not prepared in data_dir '{data_dir}'", "download=False (with --data-dir, data is never downloaded)",
        "extra_32x32.mat",
    )
    assert _files_under(data_dir) == []


def test_prepared_tfds_dataset_passes_without_network(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    default_dir = tmp_path / "tfds-default"
    monkeypatch.setattr(tfds.core.constants, "DATA_DIR", str(default_dir))
    builder = tfds.builder("cifar10", data_dir=str(default_dir))
    os.makedirs(builder.data_dir)
    builder.info.write_to_directory(builder.data_dir)  # What preparing leaves, minus the records.

    def no_network(*args, **kwargs):
        raise AssertionError("a prepared dataset needs no network")

    monkeypatch.setattr(tfds_source, "is_reachable", no_network)
    pipelines.ensure_available("cifar10")  # TFDS' default folder.
    pipelines.ensure_available("cifar10", data_dir=str(default_dir), download=False)
    with pytest.raises(pipelines.DatasetNotPreparedError, match="'cifar100'"):
        pipelines.ensure_available("cifar100", data_dir=str(default_dir), download=False)


# Corrupt model files -------------------------------------------------------


@pytest.fixture(scope="module")
def saved_model_file(tmp_path_factory):
    import keras

    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    path = tmp_path_factory.mktemp("model") / "model.keras"
    model.save(path)
    return path


@pytest.mark.parametrize("command", ["evaluate", "export"])
@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_model_file_is_named(command, damage, saved_model_file, tmp_path, capsys):
    data = saved_model_file.read_bytes()
    bad = tmp_path / "model.keras"
    bad.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"garbage")
    argv = [command, str(bad), "--dataset", "digits"] + (["--root", str(tmp_path / "out")] if command == "export" else [])
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    _one_line(err)
    assert f"Model file '{bad}' is corrupt or unreadable (not a complete .keras archive" in err
    assert "File not found" not in err
    assert not (tmp_path / "out").exists()


# The run's dataset record (dataset.json) ----------------------------------


@pytest.mark.parametrize(
    "content, problem",
    [
        ("[]", "a JSON object is needed, not list"),
        ("{}", "missing keys ['class_names', 'dataset', 'shape', 'split_digests', 'splits']"),
        ('{"dataset": "digits", "shape": [8, 8, 1], "class_names": ["0", "1"], "splits": {"train": 1, "test": 1}, '
         '"split_digests": null, "extra": 1}', "unknown keys ['extra']"),
        ('{"dataset": "digits", "shape": [8, 0, 1], "class_names": ["0", "1"], "splits": {"train": 1, "test": 1}, '
         '"split_digests": null}', "'shape' is [8, 0, 1]"),
        ('{"dataset": "digits", "shape": [8, 8, 1], "class_names": ["0"], "splits": {"train": 1, "test": 1}, '
         '"split_digests": null}', "'class_names' is ['0']"),
        ('{"dataset": "digits", "shape": [8, 8, 1], "class_names": ["0", "1"], "splits": {"train": "1", "test": 1}, '
         '"split_digests": null}', "'splits' is {'train': '1', 'test': 1}"),
        ('{"dataset": "digits", "shape": [8, 8, 1], "class_names": ["0", "1"], "splits": {"train": 1, "test": 1}, '
         '"split_digests": {"train": "x", "test": "y"}}', "'split_digests' is {'train': 'x', 'test': 'y'}"),
    ],
)
def test_a_malformed_dataset_record_is_named(tmp_path, content, problem):
    from keras_dropact.training import run_dataset

    (tmp_path / "dataset.json").write_text(content)
    with pytest.raises(RuntimeError) as error:
        run_dataset.read(str(tmp_path), "digits")
    message = str(error.value)
    assert message.startswith(f"{str(tmp_path / 'dataset.json')!r} is not a dataset record ({problem}); it is left as it is.")
    assert len(message.splitlines()) == 1


def test_a_dataset_record_is_strict_json_and_a_source_is_named_for_what_it_is(tmp_path):
    from keras_dropact.training import run_dataset

    (tmp_path / "dataset.json").write_text('{"dataset": NaN}')
    with pytest.raises(RuntimeError, match=r"dataset.json' is not valid JSON \(the non-standard token "
                                           r"NaN\), so not a dataset record; it is left as it is. Put back"):
        run_dataset.read(str(tmp_path), "digits")
    # Without --dataset: a folder without config.json is not called a model file.
    from keras_dropact.training import sources

    (tmp_path / "model.keras").write_bytes(b"not loaded to be named")
    with pytest.raises(ValueError, match=r"is a folder without config.json, not a run directory: "
                                         r"name the dataset its model was trained on with --dataset"):
        sources.resolve(str(tmp_path))
    with pytest.raises(ValueError, match=r"model.keras' is a model file, not a run directory"):
        sources.resolve(str(tmp_path / "model.keras"))


def test_dataset_record_round_trip_and_its_absence(tmp_path):
    from keras_dropact.training import run_dataset

    data = _split_folder(tmp_path / "data")
    config = TrainConfig(dataset=f"folder:{data}", run_dir=str(tmp_path / "run"))
    os.makedirs(config.run_dir)
    assert run_dataset.write(config.run_dir, config) is None  # One size: no note.
    record = run_dataset.read(config.run_dir, config.dataset)
    assert record == run_dataset.DatasetRecord.of(config.dataset)
    assert record.shape == (6, 5, 3) and record.class_names == ("ant", "bee") and record.splits == {"train": 4, "test": 4}
    with pytest.raises(RuntimeError, match="records dataset 'folder:.*', but the run's config.json says 'digits'"):
        run_dataset.read(config.run_dir, "digits")
    (tmp_path / "run" / "dataset.json").write_text('{"dataset": "fol')
    with pytest.raises(RuntimeError, match=r"dataset.json' is not valid JSON \(Unterminated string.*, so not a dataset record"):
        run_dataset.read(config.run_dir, config.dataset)
    os.remove(tmp_path / "run" / "dataset.json")
    with pytest.raises(RuntimeError, match="has no dataset.json: the classes and image size of its 'folder:"):
        run_dataset.read(config.run_dir, config.dataset)
    # A registered dataset is described by the registry (runs of older versions).
    assert run_dataset.read(config.run_dir, "digits").class_names == tuple("0123456789")


@pytest.mark.slow
def test_a_folders_size_note_is_shown_by_dropact_train_not_by_quiet_callers(tmp_path, capsys):
    # run_dataset printed it to stderr from library code, for `verbose=0`
    # callers (repro, tests) too.
    for split in ("train", "test"):
        for name in ("ant", "bee"):
            for i, side in enumerate((8, 8, 8, 9)):
                _write_png(tmp_path / "data" / split / name / f"{i}.png", 10 * i, (side, side, 3))
    flags = dict(model="simple-cnn", dataset=f"folder:{tmp_path / 'data'}", epochs=1,
                 steps_per_epoch=1, batch_size=4)
    note = "images are read at 8x8, the most common size; 4 of 16 images have another size"
    train(TrainConfig(**flags, light=True, run_dir=str(tmp_path / "quiet")), verbose=0)
    assert note not in capsys.readouterr().err
    argv = ["train", "--run-dir", str(tmp_path / "shown")]
    for name, value in flags.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    assert cli.main(argv) == 0
    assert note in capsys.readouterr().err
