"""Fashion-MNIST: the checked idx reader, where the files are looked for, the
dataset end to end, and `--train-size`.

The reader and lookup tests write their own small idx files and need no
data. The tests marked `real` read the four original files where they are
installed (the Debian package `dataset-fashion-mnist`, which `.ci/run`
installs where it can) and skip, saying so, where they are not.
"""

import gzip
import json
import os
import struct
import tracemalloc

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_dropact import cli
from keras_dropact import pipelines
from keras_dropact.pipelines import augment
from keras_dropact.pipelines import fashion_mnist
from keras_dropact.pipelines import idx
from keras_dropact.pipelines import registry
from keras_dropact.pipelines import tfds_source
from tests.conftest import tensorflow_only

pytestmark = tensorflow_only

ALL_FILES = list(fashion_mnist.FILE_NAMES)
SYSTEM_FILES = [os.path.join(fashion_mnist.SYSTEM_FOLDER, name) for name in ALL_FILES]
real = pytest.mark.skipif(
    not all(os.path.isfile(path) for path in SYSTEM_FILES),
    reason=f"Fashion-MNIST is not installed in {fashion_mnist.SYSTEM_FOLDER} "
    "(apt-get install dataset-fashion-mnist)",
)


def write_idx(path, values, magic=None, dims=None, tail=b""):
    """A gzipped idx file of the uint8 `values`; `magic`, `dims` and `tail`
    (bytes after the values) override what a correct file holds."""
    values = np.ascontiguousarray(values, np.uint8)
    magic = bytes((0, 0, 0x08, values.ndim)) if magic is None else magic
    dims = values.shape if dims is None else dims
    header = magic + struct.pack(f">{len(dims)}I", *dims)
    with gzip.open(path, "wb") as f:
        f.write(header + values.tobytes() + tail)
    return str(path)


def _images(count=5):
    return np.random.default_rng(0).integers(0, 256, (count, 28, 28), dtype=np.uint8)


# The reader -----------------------------------------------------------------


def test_idx_round_trip(tmp_path):
    images, labels = _images(), np.array([0, 9, 3, 3, 1], np.uint8)
    np.testing.assert_array_equal(
        idx.read(write_idx(tmp_path / "i.gz", images), (28, 28), 5), images)
    np.testing.assert_array_equal(
        idx.read_labels(write_idx(tmp_path / "l.gz", labels), 5, 10), labels)


def _raw(data):
    """A maker of a file holding `data` as it is."""
    def make(path):
        path.write_bytes(data)
        return str(path)

    return make


def _truncated_gzip(path):
    data = gzip.compress(b"\x00\x00\x08\x03" + struct.pack(">3I", 5, 28, 28) + _images().tobytes())
    path.write_bytes(data[: len(data) // 2])
    return str(path)


def _damaged_gzip(path):
    data = bytearray(gzip.compress(b"\x00\x00\x08\x03" + struct.pack(">3I", 5, 28, 28) + _images().tobytes()))
    data[-6] ^= 0xFF  # The CRC-32 of the trailer.
    path.write_bytes(bytes(data))
    return str(path)


BAD_IMAGE_FILES = {
    "not gzip": (_raw(b"\x00\x00\x08\x03 raw"), "is not a gzip file (it starts with b'\\x00\\x00')"),
    "truncated gzip": (_truncated_gzip, "is truncated: its gzip stream ends before its end marker"),
    "damaged gzip": (_damaged_gzip, "is damaged: CRC check failed"),
    "labels magic": (lambda p: write_idx(p, np.zeros(5, np.uint8)),
                     "starts with magic number 0x00000801, not 0x00000803"),
    "int32 magic": (lambda p: write_idx(p, _images(), magic=b"\x00\x00\x0c\x03"),
                    "starts with magic number 0x00000c03"),
    "other count": (lambda p: write_idx(p, _images(4)), "holds 4 images of 28x28; expected 5 of 28x28"),
    "other size": (lambda p: write_idx(p, np.zeros((5, 28, 27))), "holds 5 images of 28x27"),
    "truncated payload": (lambda p: write_idx(p, _images(4), dims=(5, 28, 28)),
                          "is truncated: 3136 of the 3920 bytes of images"),
    "data after the payload": (lambda p: write_idx(p, _images(), tail=b"\x00"),
                               "holds more data than the 5 images of its header"),
    "empty": (_raw(b""), "is not a gzip file (it starts with b'')"),
}


@pytest.mark.parametrize("case", BAD_IMAGE_FILES)
def test_a_bad_file_is_one_line_naming_it(case, tmp_path):
    make, expected = BAD_IMAGE_FILES[case]
    path = make(tmp_path / "train-images-idx3-ubyte.gz")
    with pytest.raises(idx.IdxError) as error:
        idx.read(path, (28, 28), 5, what="images")
    message = str(error.value)
    assert message.startswith(repr(path)) and expected in message, message
    assert "\n" not in message


def test_a_label_out_of_range_is_named(tmp_path):
    path = write_idx(tmp_path / "l.gz", np.array([0, 9, 10, 3], np.uint8))
    with pytest.raises(idx.IdxError, match=r"holds label 10 at index 2; labels are 0\.\.9\.$"):
        idx.read_labels(path, 4, 10)


def test_a_header_claiming_billions_of_images_allocates_nothing(tmp_path):
    path = write_idx(tmp_path / "i.gz", _images(1), dims=(2**32 - 1, 28, 28))
    tracemalloc.start()
    try:
        with pytest.raises(idx.IdxError, match="holds 4294967295 images of 28x28; expected 60000"):
            idx.read(path, (28, 28), 60_000, what="images")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, peak  # Not the 3.4 TB the header claims, nor one split's 47 MB.


# Where the files are looked for ---------------------------------------------


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Keras' cache, the Debian folder and TFDS' data folder, all empty, in tmp_path."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(fashion_mnist, "SYSTEM_FOLDER", str(tmp_path / "debian"))
    monkeypatch.setattr(tfds.core.constants, "DATA_DIR", str(tmp_path / "tfds"))
    return {"keras": tmp_path / "keras" / "datasets" / "fashion-mnist", "debian": tmp_path / "debian"}


def _put_files(folder, names=ALL_FILES):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def test_keras_cache_first_then_the_debian_folder(places):
    _put_files(places["debian"])
    assert fashion_mnist.find() == ("idx", str(places["debian"]))
    _put_files(places["keras"], ALL_FILES[:3])  # An interrupted load_data().
    assert fashion_mnist.find() == ("idx", str(places["debian"]))
    _put_files(places["keras"])
    assert fashion_mnist.find() == ("idx", str(places["keras"]))


def test_with_data_dir_only_it_is_looked_at(places, tmp_path):
    _put_files(places["debian"])
    _put_files(tmp_path / "mine")
    assert fashion_mnist.find(str(tmp_path / "mine")) == ("idx", str(tmp_path / "mine"))
    with pytest.raises(tfds_source.DatasetNotPreparedError) as error:
        fashion_mnist.find(str(tmp_path / "empty"))
    message = str(error.value)
    assert "not in --data-dir" in message and "no other place is looked at" in message
    assert "apt-get install dataset-fashion-mnist" in message and "\n" not in message


def test_not_found_is_one_line_naming_the_places_and_the_two_ways(places, tmp_path):
    _put_files(places["keras"], ALL_FILES[:1])
    before = sorted(p for p in tmp_path.rglob("*"))
    with pytest.raises(tfds_source.DatasetNotPreparedError) as error:
        fashion_mnist.find()
    message = str(error.value)
    assert "\n" not in message
    for text in (str(places["keras"]), str(places["debian"]), str(tmp_path / "tfds"),
                 "incomplete: ", "lacks train-labels-idx1-ubyte.gz", "apt-get install dataset-fashion-mnist",
                 "keras.datasets.fashion_mnist.load_data() on a connected machine"):
        assert text in message, (text, message)
    assert sorted(p for p in tmp_path.rglob("*")) == before  # Nothing written.


def test_dropact_train_without_the_files_writes_nothing(places, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--dataset", "fashion-mnist", "--epochs", "1", "--run-dir", str(run)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("dropact train: error: Dataset 'fashion-mnist' not found: looked in ")
    assert len(err.strip().splitlines()) == 1 and not run.exists()


def test_bad_files_stop_dropact_train_with_one_line(tmp_path, capsys):
    """Small files where 60,000 images must be: exit 2, the file named, no run."""
    data = tmp_path / "data"
    data.mkdir()
    for split, (images, labels) in fashion_mnist.FILES.items():
        write_idx(data / images, _images())
        write_idx(data / labels, np.zeros(5, np.uint8))
    run = tmp_path / "run"
    argv = ["train", "--dataset", "fashion-mnist", "--data-dir", str(data), "--run-dir", str(run)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err == (f"dropact train: error: {str(data / 'train-images-idx3-ubyte.gz')!r} holds 5 images "
                   "of 28x28; expected 60000 of 28x28.\n")
    assert not run.exists()


def test_a_prepared_tfds_folder_is_read(places, tmp_path, monkeypatch):
    """TFDS `fashion_mnist` (mocked) as the last place: uint8 28x28x1, int32 labels."""
    monkeypatch.setattr(tfds_source, "prepared_builder",
                        lambda name, data_dir=None: tfds.builder(name, data_dir=data_dir))
    with tfds.testing.mock_data(num_examples=6):
        kind, _ = fashion_mnist.find()
        images, labels = next(iter(fashion_mnist.load(None, "test").batch(6)))
    assert kind == "tfds"
    assert (images.dtype, tuple(images.shape), labels.dtype) == (tf.uint8, (6, 28, 28, 1), tf.int32)
    assert np.all((labels.numpy() >= 0) & (labels.numpy() < 10))


# The dataset -----------------------------------------------------------------


def test_the_registry_row():
    info = pipelines.info("fashion-mnist")
    assert (info["shape"], info["num_classes"], info["splits"]) == ((28, 28, 1), 10, {"train": 60000, "test": 10000})
    assert (info["mean"], info["std"], info["cutout_size"], info["recipe_augment"]) == ((0.2860,), (0.3530,), 14, None)
    assert pipelines.class_names("fashion-mnist") == (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def test_standard_pads_fashion_mnist_by_two_pixels():
    """Crops of a white 28x28 image padded with zeros: every offset of
    -2..2 rows appears, none beyond (CIFAR's 4 would give up to 4 black rows)."""
    spec = registry.get("fashion-mnist")
    batch_fn = augment.make_batch_fn(spec, augment.get("standard"))
    white = tf.fill([512, 28, 28, 1], tf.constant(255, tf.uint8))
    images, _ = batch_fn(white, tf.zeros([512], tf.int32), tf.constant([1, 2], tf.int64))
    black = images.numpy()[:, :, 14, 0] < 0  # Normalised 0 is below 0, 255 above.
    top, bottom = black[:, :4].sum(axis=1), black[:, -4:].sum(axis=1)
    assert set(top) == set(bottom) == {0, 1, 2}
    assert np.all((top == 0) | (bottom == 0))


@real
def test_the_real_files():
    """Counts, the balanced classes, a checksum of every pixel, and the
    normalisation of the registry, computed from the training split."""
    train_images, train_labels = fashion_mnist.read_arrays(fashion_mnist.SYSTEM_FOLDER, "train")
    test_images, test_labels = fashion_mnist.read_arrays(fashion_mnist.SYSTEM_FOLDER, "test")
    assert train_images.shape == (60000, 28, 28, 1) and test_images.shape == (10000, 28, 28, 1)
    np.testing.assert_array_equal(np.bincount(train_labels), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(test_labels), [1000] * 10)
    assert int(train_images.sum(dtype=np.int64)) == 3_431_114_169
    assert int(test_images.sum(dtype=np.int64)) == 573_469_082
    assert list(test_labels[:5]) == [9, 2, 1, 1, 6]
    counts = np.bincount(train_images.ravel(), minlength=256)  # Exact, without a float copy.
    values = np.arange(256) / 255
    mean = (counts * values).sum() / counts.sum()
    std = np.sqrt((counts * (values - mean) ** 2).sum() / counts.sum())
    assert (round(mean, 4), round(std, 4)) == (0.2860, 0.3530)


@real
def test_the_test_pipeline_is_the_normalised_files():
    images, labels = fashion_mnist.read_arrays(fashion_mnist.SYSTEM_FOLDER, "test")
    batch_images, batch_labels = next(iter(pipelines.load("fashion-mnist", "test", 256)))
    np.testing.assert_allclose(batch_images, (images[:256] / 255.0 - 0.2860) / 0.3530, atol=1e-5)
    np.testing.assert_array_equal(batch_labels, labels[:256])


# --train-size ---------------------------------------------------------------


def _examples(dataset):
    return sorted(bytes(image.numpy().tobytes()) for images, _ in dataset for image in images)


def test_take_reads_the_first_examples_whatever_the_seed():
    first = _examples(pipelines.load("digits", "train", 100, shuffle=False).take(1))
    for seed in (0, 1):
        subset = pipelines.load("digits", "train", 32, take=100, seed=seed, augment=None)
        assert _examples(subset) == first
    stream = pipelines.stream_fn("digits", "train", 32, take=100, seed=0)(tf.distribute.InputContext())
    assert [int(tf.shape(y)[0]) for _, y in stream.take(5)] == [32, 32, 32, 4, 32]
    with pytest.raises(ValueError, match=r"take=1438 exceeds the 1437 examples of the 'train' split of digits"):
        pipelines.load("digits", "train", 32, take=1438)


@pytest.mark.slow
def test_train_size_sets_the_epochs_and_is_kept_by_resume(tmp_path, capsys):
    run = str(tmp_path / "run")
    argv = ["train", "--model", "simple-cnn", "--epochs", "1", "--batch-size", "32", "--train-size", "100"]
    assert cli.main([*argv, "--run-dir", run]) == 0
    with open(os.path.join(run, "results.json")) as f:
        results = json.load(f)
    assert results["config"]["train_size"] == 100 and results["optimizer_steps"] == 4  # ceil(100 / 32).
    with open(os.path.join(run, "config.json")) as f:
        assert json.load(f)["train_size"] == 100
    capsys.readouterr()
    assert cli.main(["train", "--resume", "--run-dir", run, "--train-size", "200"]) == 2
    assert "--train-size 200 (saved: 100)" in capsys.readouterr().err
    too_many = str(tmp_path / "too-many")
    assert cli.main([*argv[:-1], "1438", "--run-dir", too_many]) == 2
    err = capsys.readouterr().err
    assert err.strip().endswith("--train-size 1438 exceeds the 1437 examples of the training split of "
                                "digits; use 1 to 1437.")
    assert not os.path.exists(too_many)


@real
@pytest.mark.slow
def test_pngs_of_test_images_predict_their_class_through_a_run_and_its_export(tmp_path, capsys):
    """Ordinary 28x28 8-bit grayscale PNGs of the first 20 test images: a
    briefly trained simple-cnn (about 75% accurate; chance is 10%) names most
    of their classes, and its SavedModel gives the same answers."""
    images, labels = fashion_mnist.read_arrays(fashion_mnist.SYSTEM_FOLDER, "test")
    files = []
    for i in range(20):
        files.append(str(tmp_path / f"test-{i}.png"))
        tf.io.write_file(files[-1], tf.io.encode_png(images[i]))
    run = str(tmp_path / "run")
    assert cli.main(["train", "--model", "simple-cnn", "--dataset", "fashion-mnist", "--train-size", "2000",
                     "--epochs", "2", "--lr", "0.05", "--run-dir", run]) == 0
    assert cli.main(["export", run, "--root", str(tmp_path / "exports"), "--name", "fm"]) == 0
    capsys.readouterr()
    answers = {}
    for source in (run, str(tmp_path / "exports" / "fm")):
        assert cli.main(["predict", source, *files, "--json", "--top-k", "1"]) == 0
        answers[source] = [a["predictions"][0] for a in json.loads(capsys.readouterr().out)]
    exported = answers[str(tmp_path / "exports" / "fm")]
    assert [a["class_name"] for a in answers[run]] == [a["class_name"] for a in exported]
    np.testing.assert_allclose([a["probability"] for a in answers[run]],
                               [a["probability"] for a in exported], atol=1e-5)
    names = pipelines.class_names("fashion-mnist")
    right = sum(a["class_name"] == names[label] for a, label in zip(answers[run], labels))
    assert right >= 12, (right, answers[run])
