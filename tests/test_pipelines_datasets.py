"""pipelines.load / info / dataset_fn on every dataset, with TFDS mocked.

TFDS datasets come from `tfds.testing.mock_data` (random uint8 images, no
network); digits and mnist1d are the real offline data.
"""

import random

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_dropact import pipelines
from keras_dropact.pipelines import offline

TFDS_NAMES = ("cifar10", "cifar100", "svhn", "emnist-balanced")
MOCK_EXAMPLES = 40
CIFAR_MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32)
CIFAR_STD = np.array([0.2023, 0.1994, 0.2010], np.float32)


def _collect(dataset):
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    return np.concatenate(images), np.concatenate(labels)


def _raw_tfds(tfds_name, split):
    raw = tfds.load(tfds_name, split=split, as_supervised=True)
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in raw])
    return np.stack(images), np.array(labels)


@pytest.mark.parametrize("name", TFDS_NAMES)
@pytest.mark.parametrize("augment", [None, "standard"])
def test_tfds_shapes_dtypes_and_ranges(name, augment):
    spec = pipelines.info(name)
    with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
        dataset = pipelines.load(name, "train", 16, augment=augment, seed=3)
        images, labels = _collect(dataset)
    assert dataset.element_spec[0].dtype == tf.float32
    assert dataset.element_spec[1].dtype == tf.int32
    assert images.shape[1:] == spec["shape"]
    assert labels.min() >= 0 and labels.max() < spec["num_classes"]
    if spec["mean"] is None:  # SVHN, EMNIST: rescaled to [0, 1].
        assert images.min() >= 0.0 and images.max() <= 1.0
    else:
        low = (0.0 - CIFAR_MEAN) / CIFAR_STD
        high = (1.0 - CIFAR_MEAN) / CIFAR_STD
        assert np.all(images >= low - 1e-5) and np.all(images <= high + 1e-5)


@pytest.mark.parametrize(
    "name, tfds_name", [("cifar10", "cifar10"), ("cifar100", "cifar100")]
)
def test_cifar_normalisation_is_exact(name, tfds_name):
    with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
        images, labels = _collect(pipelines.load(name, "test", 16))
        raw_images, raw_labels = _raw_tfds(tfds_name, "test")
    expected = (raw_images / 255.0 - CIFAR_MEAN) / CIFAR_STD
    np.testing.assert_allclose(images, expected, atol=1e-5)
    np.testing.assert_array_equal(labels, raw_labels)  # test: not shuffled.


def test_svhn_train_is_train_plus_extra():
    """The training split reads TFDS `train` and `extra`; test reads `test`.

    The fake reader serves each TFDS split with its own label and size, and
    resolves "a+b" expressions by concatenation as TFDS does.
    """
    sizes = {"train": 5, "extra": 7, "test": 3}
    split_labels = {"train": 0, "extra": 1, "test": 2}

    def fake_as_dataset(self, split, **kwargs):
        parts = [
            tf.data.Dataset.from_tensors(
                {"image": tf.zeros([32, 32, 3], tf.uint8),
                 "label": tf.constant(split_labels[part], tf.int64)}
            ).repeat(sizes[part])
            for part in str(split).split("+")
        ]
        dataset = parts[0]
        for part in parts[1:]:
            dataset = dataset.concatenate(part)
        return dataset

    with tfds.testing.mock_data(as_dataset_fn=fake_as_dataset):
        _, train_labels = _collect(pipelines.load("svhn", "train", 4, seed=0))
        _, test_labels = _collect(pipelines.load("svhn", "test", 4))
    assert np.bincount(train_labels).tolist() == [5, 7]
    assert test_labels.tolist() == [2, 2, 2]
    assert pipelines.info("svhn")["splits"] == {"train": 604_388, "test": 26_032}


def test_emnist_images_are_transposed_upright():
    """TFDS stores EMNIST transposed; load returns upright images."""
    upright = np.zeros([28, 28, 1], np.uint8)
    upright[2:20, 5] = 255  # A vertical stroke in column 5 ...
    upright[19, 5:15] = 255  # ... with a foot to the right: an "L".
    stored = np.transpose(upright, [1, 0, 2])

    def fake_as_dataset(self, split, **kwargs):
        return tf.data.Dataset.from_tensors(
            {"image": tf.constant(stored), "label": tf.constant(46, tf.int64)}
        )

    with tfds.testing.mock_data(as_dataset_fn=fake_as_dataset):
        images, labels = _collect(pipelines.load("emnist-balanced", "test", 1))
    np.testing.assert_array_equal(images[0], upright / 255.0)
    assert labels.tolist() == [46]


def test_digits_split_and_values():
    from sklearn.datasets import load_digits

    train_x, train_y = _collect(pipelines.load("digits", "train", 500, shuffle=False))
    test_x, test_y = _collect(pipelines.load("digits", "test", 500))
    assert train_x.shape == (1437, 8, 8, 1) and test_x.shape == (360, 8, 8, 1)
    assert train_x.min() == 0.0 and train_x.max() == 1.0
    # The split is a fixed permutation of all 1797 images: together they are
    # exactly scikit-learn's set (images / 16), and the order never changes.
    digits = load_digits()
    order = np.random.RandomState(0).permutation(1797)
    np.testing.assert_array_equal(
        np.concatenate([train_x, test_x])[..., 0], digits.images[order] / 16.0
    )
    np.testing.assert_array_equal(np.concatenate([train_y, test_y]), digits.target[order])


def test_any_image_dataset_is_read_at_another_size_and_channels():
    """Issue 26: `image_size` and `channels` for every image dataset, by the
    rule serving reads files with (`image_ops`: bilinear, rounded, clipped;
    gray repeated into RGB). A folder's gray images too."""
    stored = np.concatenate([x for x, _ in offline.load_digits(None, "test").batch(500).as_numpy_iterator()])
    images, _ = _collect(pipelines.load("digits", "test", 500, image_size=[16, 12], channels=3))
    resized = np.clip(np.round(tf.image.resize(stored, (16, 12)).numpy()), 0, 255)
    np.testing.assert_array_equal(images, np.repeat(resized, 3, axis=-1) / 16.0)
    assert pipelines.info("digits", image_size=[8, 8])["shape"] == (8, 8, 1)  # Its own size: as it is.


def test_a_gray_folder_is_read_as_rgb(tmp_path):
    for name in ("ant", "bee"):
        for i in range(3):
            _write_png(tmp_path / "gray" / name / f"{i}.png", 40 * i, (6, 5, 1))
    folder = f"folder:{tmp_path / 'gray'}"
    gray, _ = _collect(pipelines.load(folder, "train", 8, shuffle=False))
    rgb, _ = _collect(pipelines.load(folder, "train", 8, channels=3, shuffle=False))
    assert pipelines.info(folder, channels=3)["shape"] == (6, 5, 3)
    np.testing.assert_array_equal(rgb, np.repeat(gray, 3, axis=-1))


def test_mnist1d_matches_generator_and_keeps_global_rng():
    import mnist1d.data

    np.random.seed(123)
    random.seed(123)
    expected_numpy = np.random.get_state()[1].copy()
    offline._mnist1d_arrays.cache_clear()
    train_x, train_y = _collect(
        pipelines.load("mnist1d", "train", 1000, shuffle=False)
    )
    assert np.array_equal(np.random.get_state()[1], expected_numpy)
    assert random.random() == random.Random(123).random()
    test_x, _ = _collect(pipelines.load("mnist1d", "test", 1000))
    assert train_x.shape == (4000, 40, 1) and test_x.shape == (1000, 40, 1)
    assert train_x.dtype == np.float32
    reference = mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())
    np.testing.assert_allclose(train_x[..., 0], reference["x"], rtol=1e-6)
    np.testing.assert_array_equal(train_y, reference["y"])
    assert set(np.unique(train_y)) == set(range(10))


def _write_png(path, value, shape=(6, 5, 3)):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full(shape, value, np.uint8)
    path.write_bytes(tf.io.encode_png(image).numpy())


@pytest.mark.parametrize("layout", ["split_folders", "class_folders"])
def test_folder_dataset(tmp_path, layout):
    # Class "ant" images have value 10 + i, class "bee" 100 + i.
    for i in range(5):
        for label, (name, base) in enumerate([("bee", 100), ("ant", 10)]):
            split = "test" if i == 4 else "train"
            folder = tmp_path / split / name if layout == "split_folders" else tmp_path / name
            _write_png(folder / f"{i}.png", base + i)
    name = f"folder:{tmp_path}"
    info = pipelines.info(name)
    assert info["shape"] == (6, 5, 3) and info["num_classes"] == 2
    assert info["splits"] == {"train": 8, "test": 2}
    images, labels = _collect(pipelines.load(name, "train", 3, seed=0))
    test_images, test_labels = _collect(pipelines.load(name, "test", 3))
    assert images.shape == (8, 6, 5, 3) and test_images.shape == (2, 6, 5, 3)
    all_images = np.concatenate([images, test_images])
    all_labels = np.concatenate([labels, test_labels])
    # Labels follow sorted class names: ant = 0, bee = 1.
    values = np.round(all_images[:, 0, 0, 0] * 255).astype(int)
    assert sorted(values[all_labels == 0]) == [10, 11, 12, 13, 14]
    assert sorted(values[all_labels == 1]) == [100, 101, 102, 103, 104]
    if layout == "split_folders":
        assert sorted(np.round(test_images[:, 0, 0, 0] * 255).astype(int)) == [14, 104]


def test_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="not a directory"):
        pipelines.load(f"folder:{tmp_path / 'missing'}", "train", 2)
    with pytest.raises(ValueError, match="found no class folders .* at least 2 class sub-folders"):
        pipelines.load(f"folder:{tmp_path}", "train", 2)
    # Every check runs when the dataset is described, before any loading.
    for i in range(2):
        _write_png(tmp_path / "train" / "ant" / f"{i}.png", i)
        _write_png(tmp_path / "test" / "ant" / f"{i}.png", i)
    name = f"folder:{tmp_path}"
    with pytest.raises(ValueError, match="found only the class folder 'ant'"):
        pipelines.info(name)
    _write_png(tmp_path / "train" / "bee" / "0.png", 9)
    with pytest.raises(ValueError, match="only in train/: bee; only in test/: none"):
        pipelines.info(name)
    (tmp_path / "test" / "bee").mkdir()
    with pytest.raises(ValueError, match=r"class folder\(s\) bee in 'test/' hold no images"):
        pipelines.info(name)
    _write_png(tmp_path / "test" / "bee" / "0.png", 9)
    assert pipelines.info(name)["splits"] == {"train": 3, "test": 3}
    pipelines.ensure_available(name)
    # Every image is decoded when the folder is described: a bad one is named.
    (tmp_path / "test" / "bee" / "1.png").write_bytes(b"not a png")
    for describe in (pipelines.info, pipelines.ensure_available):
        with pytest.raises(ValueError, match="cannot decode image '.*/test/bee/1.png'"):
            describe(name)


def _sized_folder(root, sizes, channels=3):
    """Class folders ant/ and bee/, image i of each of size sizes[i]."""
    for name in ("ant", "bee"):
        for i, (height, width) in enumerate(sizes):
            _write_png(root / name / f"{i}.png", 50, (height, width, channels))
    return f"folder:{root}"


def test_folder_size_comes_from_all_images_not_the_first(tmp_path):
    """Issue 20: a 1x1 first image made every image 1x1."""
    name = _sized_folder(tmp_path, [(1, 1)] + [(6, 5)] * 4)
    info = pipelines.info(name)
    assert info["shape"] == (6, 5, 3)
    assert info["note"] == (
        f"{name}: images are read at 6x5, the most common size; 2 of 10 images have another "
        "size and are resized to it (choose the size with --image-size)."
    )
    images, _ = _collect(pipelines.load(name, "train", 4))
    assert images.shape[1:] == (6, 5, 3)
    # A tie goes to the larger size; no note when every image has the size.
    assert pipelines.info(_sized_folder(tmp_path / "tie", [(2, 2), (3, 4), (2, 2), (3, 4)]))["shape"] == (3, 4, 3)
    assert pipelines.info(_sized_folder(tmp_path / "same", [(6, 5)] * 5))["note"] == ""


def test_folder_image_size_is_chosen_by_the_caller(tmp_path):
    name = _sized_folder(tmp_path, [(1, 1)] + [(6, 5)] * 4)
    info = pipelines.info(name, image_size=[4, 3])
    assert info["shape"] == (4, 3, 3) and info["note"] == ""
    assert pipelines.info(name, image_size=7)["shape"] == (7, 7, 3)
    images, _ = _collect(pipelines.load(name, "test", 4, image_size=[4, 3]))
    assert images.shape[1:] == (4, 3, 3)
    for bad in (0, -2, [4, 0], [1, 2, 3], "32", True, 2.5):
        with pytest.raises(ValueError, match=r"--image-size must be a positive size in pixels, N or HEIGHTxWIDTH"):
            pipelines.info(name, image_size=bad)
    with pytest.raises(ValueError, match="--image-size and --channels are for images; 'mnist1d' holds 1-D"):
        pipelines.info("mnist1d", image_size=8)


def test_folder_channels_come_from_all_images(tmp_path):
    """Grayscale only if every image is: one gray first image no longer makes the folder gray."""
    for split in ("train", "test"):
        for name in ("ant", "bee"):
            _write_png(tmp_path / "mixed" / split / name / "0.png", 50, (6, 5, 3))
            _write_png(tmp_path / "gray" / split / name / "0.png", 50, (6, 5, 2))  # Gray + alpha.
            _write_png(tmp_path / "gray" / split / name / "1.png", 50, (6, 5, 1))
    # The first image (train/ant/0.png) is gray, the other images RGB.
    _write_png(tmp_path / "mixed" / "train" / "ant" / "0.png", 50, (6, 5, 1))
    assert pipelines.info(f"folder:{tmp_path / 'mixed'}")["shape"] == (6, 5, 3)
    assert pipelines.info(f"folder:{tmp_path / 'gray'}")["shape"] == (6, 5, 1)


def test_folder_file_names_that_are_not_utf8(tmp_path):
    """Issue 20: a non-UTF-8 file name failed with "Error converting unicode
    string" naming no file. Such images are read; a bad one is named."""
    import os

    _sized_folder(tmp_path, [(6, 5)] * 5)
    odd = os.path.join(os.fsencode(tmp_path / "ant"), b"caf\xe9.png")  # Latin-1 bytes.
    with open(odd, "wb") as f:
        f.write(tf.io.encode_png(np.full((6, 5, 3), 7, np.uint8)).numpy())
    name = f"folder:{tmp_path}"
    assert pipelines.info(name)["splits"] == {"train": 9, "test": 2}
    images, labels = _collect(pipelines.load(name, "train", 11))
    test_images, test_labels = _collect(pipelines.load(name, "test", 11))
    values = np.concatenate([images, test_images])[:, 0, 0, 0]
    assert np.sum(np.isclose(values, 7 / 255)) == 1  # The odd file was read.
    with open(odd, "wb") as f:
        f.write(b"not an image")
    with pytest.raises(ValueError) as error:
        pipelines.info(name)
    assert "cannot decode image '" in str(error.value) and "caf\\udce9.png'" in str(error.value)
    str(error.value).encode("utf-8")  # Printable.
    os.remove(odd)
    os.mkdir(os.path.join(os.fsencode(tmp_path), b"c\xffat"))
    with pytest.raises(ValueError, match=r"the class folder name 'c\\udcffat' is not UTF-8"):
        pipelines.info(name)


def test_info_and_names():
    assert pipelines.names() == (
        "cifar10", "cifar100", "svhn", "emnist-balanced", "fashion-mnist", "digits", "mnist1d",
        "folder:PATH",
    )
    assert pipelines.augmentations() == ("none", "standard", "cutout", "autoaugment")
    emnist = pipelines.info("emnist-balanced")
    assert emnist["shape"] == (28, 28, 1) and emnist["num_classes"] == 47
    assert emnist["splits"] == {"train": 112_800, "test": 18_800}
    assert pipelines.info("cifar100")["cutout_size"] == 8
    assert pipelines.info("svhn")["cutout_size"] == 20
    assert pipelines.info("cifar10")["std"] == (0.2023, 0.1994, 0.2010)
    assert pipelines.info("digits")["splits"] == {"train": 1437, "test": 360}
    assert pipelines.info("mnist1d")["shape"] == (40, 1)


def test_fit_runs_on_a_pipeline():
    import keras

    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    model.compile(
        "sgd",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(
        pipelines.load("digits", "train", 64, augment="standard", seed=0),
        validation_data=pipelines.load("digits", "test", 64),
        epochs=2,
        shuffle=False,  # the pipeline shuffles
        verbose=0,
    )
    assert len(history.history["loss"]) == 2


class _InputContext:
    """What a strategy passes to a dataset function (tf.distribute.InputContext)."""

    def __init__(self, pipelines_count, pipeline_id, replicas):
        self.num_input_pipelines = pipelines_count
        self.input_pipeline_id = pipeline_id
        self.num_replicas_in_sync = replicas

    def get_per_replica_batch_size(self, global_batch_size):
        return global_batch_size // self.num_replicas_in_sync


def test_dataset_fn_shards_and_batches_per_replica():
    make = pipelines.dataset_fn("digits", "test", 64)
    shards = [_collect(make(_InputContext(2, i, 2))) for i in (0, 1)]
    first_batch = next(iter(make(_InputContext(2, 0, 2))))[0]
    assert first_batch.shape[0] == 32  # 64 global over 2 replicas.
    everything_x, everything_y = _collect(pipelines.load("digits", "test", 64))
    assert len(shards[0][0]) + len(shards[1][0]) == len(everything_x)
    merged = np.concatenate([shards[0][0], shards[1][0]])
    key = lambda images: sorted(map(bytes, images.reshape(len(images), -1)))
    assert key(merged) == key(everything_x)


def test_dataset_fn_pipelines_draw_different_augmentations(tmp_path):
    # 20 copies of one asymmetric image in two classes (16 in train): any
    # difference between outputs comes from the augmentation draws, not
    # from the examples.
    gradient = (np.arange(64).reshape(8, 8, 1) * 4).astype(np.uint8)
    for i in range(20):
        path = tmp_path / ("one", "two")[i % 2] / f"{i}.png"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(tf.io.encode_png(gradient).numpy())
    make = pipelines.dataset_fn(
        f"folder:{tmp_path}", "train", 8, augment="standard", seed=5
    )
    first = [next(iter(make(_InputContext(2, i, 1))))[0].numpy() for i in (0, 1)]
    again = next(iter(make(_InputContext(2, 0, 1))))[0].numpy()
    np.testing.assert_array_equal(first[0], again)  # Same pipeline, same draws.
    assert not np.array_equal(first[0], first[1])


def test_dataset_fn_with_a_strategy():
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    distributed = strategy.distribute_datasets_from_function(
        pipelines.dataset_fn("digits", "train", 16, augment="cutout", cutout_size=4, seed=0)
    )
    images, labels = next(iter(distributed))
    assert images.shape == (16, 8, 8, 1) and labels.shape == (16,)
