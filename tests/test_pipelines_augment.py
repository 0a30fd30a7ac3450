"""Crop/flip, Cutout, seeding and the error messages of pipelines."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_dropact import pipelines
from keras_dropact.pipelines import augment

SEED = tf.constant([7, 11], tf.int64)


def _batch(size=64, height=12, width=10, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(1, 256, (size, height, width, channels)).astype(np.uint8)


def test_crop_flip_keeps_shape_and_takes_a_padded_window():
    images = _batch()
    out = augment.random_crop_flip(images, SEED).numpy()
    assert out.shape == images.shape and out.dtype == np.uint8
    padded = np.pad(images, [(0, 0), (4, 4), (4, 4), (0, 0)])
    seen = set()
    for image, result in zip(padded, out):
        matches = [
            (top, left, flip)
            for top in range(9)
            for left in range(9)
            for flip in (False, True)
            if np.array_equal(
                result,
                (lambda w: w[:, ::-1] if flip else w)(image[top:top + 12, left:left + 10]),
            )
        ]
        assert len(matches) == 1, "every output is exactly one padded window"
        seen.add(matches[0])
    # 64 images over 162 (offset, flip) choices: the draws vary per image.
    assert len(seen) > 40
    assert {flip for _, _, flip in seen} == {False, True}


def test_apply_cutout_zeroes_exactly_the_square_inside_the_image():
    images = np.ones([3, 32, 32, 3], np.float32)
    centres = tf.constant([[16, 16], [8, 20], [0, 31]])
    out = augment.apply_cutout(images, centres, 16).numpy()
    # Fully inside: 16 x 16 zeros per channel, rows/cols [c - 8, c + 8).
    expected = np.ones([32, 32, 3], np.float32)
    expected[8:24, 8:24] = 0
    np.testing.assert_array_equal(out[0], expected)
    expected = np.ones([32, 32, 3], np.float32)
    expected[0:16, 12:28] = 0
    np.testing.assert_array_equal(out[1], expected)
    assert np.sum(out[1] == 0) == 16 * 16 * 3
    # At a corner the square is clipped: rows [0, 8), cols [23, 32).
    assert np.sum(out[2] == 0) == 8 * 9 * 3
    assert np.all(out[2][:8, 23:] == 0)


def test_random_cutout_holes_are_clipped_squares():
    images = np.ones([200, 32, 32, 1], np.float32)
    out = augment.random_cutout(images, 16, SEED).numpy()[..., 0]
    full = 0
    for image in out:
        rows = np.flatnonzero((image == 0).any(axis=1))
        cols = np.flatnonzero((image == 0).any(axis=0))
        # One axis-aligned rectangle of zeros, at most 16 x 16.
        assert np.sum(image == 0) == len(rows) * len(cols)
        assert 0 < len(rows) <= 16 and 0 < len(cols) <= 16
        full += len(rows) == 16 and len(cols) == 16
    # Centres uniform over the image: a hole is whole with probability
    # (17/32)^2 ~ 0.28; 200 draws land in [0.15, 0.42] with margin.
    assert 0.15 < full / 200 < 0.42


def test_cutout_runs_after_normalisation_and_only_changes_the_hole():
    """Same seed: "cutout" equals "standard" except in one zeroed square."""
    with tfds.testing.mock_data(num_examples=32):
        standard = next(iter(pipelines.load("cifar10", "test", 32, augment="standard", seed=1)))[0]
        cut = next(iter(pipelines.load("cifar10", "test", 32, augment="cutout", seed=1)))[0]
    standard, cut = standard.numpy(), cut.numpy()
    changed = np.any(standard != cut, axis=-1)
    assert np.all(cut[changed] == 0.0)  # zero in normalised units
    for mask in changed:
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        assert len(rows) <= 16 and len(cols) <= 16
    assert changed.any(axis=(1, 2)).mean() > 0.9


def test_autoaugment_pipeline_output_and_cutout_16():
    with tfds.testing.mock_data(num_examples=32):
        images = next(iter(pipelines.load("cifar100", "train", 32, augment="autoaugment", seed=2)))[0]
    assert images.shape == (32, 32, 32, 3) and images.dtype == tf.float32
    holes = np.all(images.numpy() == 0.0, axis=-1)
    assert holes.any(axis=(1, 2)).mean() > 0.9
    assert holes.sum(axis=(1, 2)).max() == 16 * 16  # AutoAugment's Cutout 16 on CIFAR-100.


def _epochs(dataset, count=2):
    return [np.concatenate([x.numpy() for x, _ in dataset]) for _ in range(count)]


@pytest.mark.parametrize("augment_name", ["standard", "cutout", "autoaugment"])
def test_seeded_runs_repeat_and_epochs_differ(augment_name):
    def epochs(seed):
        with tfds.testing.mock_data(num_examples=48):
            return _epochs(
                pipelines.load("cifar10", "train", 16, augment=augment_name, seed=seed)
            )

    first, again, other = epochs(4), epochs(4), epochs(5)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], first[1])
    assert not np.array_equal(first[0], other[0])


def test_epochs_differ_by_augmentation_alone():
    """No shuffling on "test": same examples in order, new crops and flips."""
    with tfds.testing.mock_data(num_examples=32):
        dataset = pipelines.load("cifar10", "test", 16, augment="standard", seed=0)
        one, two = _epochs(dataset)
        labels = [np.concatenate([y for _, y in dataset]) for _ in range(2)]
    np.testing.assert_array_equal(labels[0], labels[1])
    assert not np.array_equal(one, two)


def test_unseeded_shuffle_differs_between_epochs():
    dataset = pipelines.load("digits", "train", 2000)
    _, first = next(iter(dataset))
    _, second = next(iter(dataset))
    assert not np.array_equal(first.numpy(), second.numpy())
    assert sorted(first.numpy()) == sorted(second.numpy())


# --- error messages -------------------------------------------------------


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError, match="Unknown dataset 'cifar-10'.*cifar10, cifar100, svhn, emnist-balanced, fashion-mnist, digits, mnist1d, folder:PATH"):
        pipelines.load("cifar-10", "train", 8)


def test_unknown_augmentation_lists_valid_names():
    with pytest.raises(ValueError, match="Unknown augmentation 'flip'.*none, standard, cutout, autoaugment"):
        pipelines.load("digits", "train", 8, augment="flip")


def test_unknown_split_and_bad_arguments():
    with pytest.raises(ValueError, match="Unknown split 'validation'.*train, test"):
        pipelines.load("digits", "validation", 8)
    with pytest.raises(ValueError, match="batch_size must be positive, got 0"):
        pipelines.load("digits", "train", 0)
    with pytest.raises(ValueError, match="global_batch_size must be an int, got 64.0"):
        pipelines.dataset_fn("digits", "train", 64.0)
    with pytest.raises(ValueError, match="seed must be None or an int >= 0"):
        pipelines.load("digits", "train", 8, seed=-1)
    with pytest.raises(ValueError, match="needs images; 'mnist1d'"):
        pipelines.load("mnist1d", "train", 8, augment="standard")
    with pytest.raises(ValueError, match="'emnist-balanced' has no default; pass cutout_size"):
        pipelines.load("emnist-balanced", "train", 8, augment="cutout")
    with pytest.raises(ValueError, match="cutout_size=8 has no effect with augmentation 'standard'"):
        pipelines.load("digits", "train", 8, augment="standard", cutout_size=8)


def test_not_prepared_dataset_explains_offline_preparation(tmp_path):
    with pytest.raises(pipelines.DatasetNotPreparedError) as caught:
        pipelines.load("cifar10", "train", 8, data_dir=str(tmp_path), download=False)
    message = str(caught.value)
    assert "'cifar10'" in message
    assert f"data_dir '{tmp_path}'" in message
    assert "cifar-10-binary.tar.gz" in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz" in message
    assert f"tfds build cifar10 --data_dir={tmp_path} --manual_dir=MANUAL_DIR" in message
    assert "pipelines.prepare('cifar10'" in message


def test_failed_download_is_reported_with_its_cause(tmp_path, monkeypatch):
    def no_network(self, *args, **kwargs):
        raise ConnectionError("Failed to resolve 'www.cs.toronto.edu'")

    monkeypatch.setattr(
        tfds.core.DatasetBuilder, "download_and_prepare", no_network
    )
    with pytest.raises(pipelines.DatasetNotPreparedError) as caught:
        pipelines.load("svhn", "train", 8, data_dir=str(tmp_path))
    message = str(caught.value)
    assert "'svhn' (TFDS 'svhn_cropped')" in message
    assert "ConnectionError: Failed to resolve" in message
    for archive in ("train_32x32.mat", "test_32x32.mat", "extra_32x32.mat"):
        assert archive in message
    assert isinstance(caught.value.__cause__, ConnectionError)


def test_prepare_rejects_offline_datasets():
    with pytest.raises(ValueError, match="'digits' is not a TFDS dataset"):
        pipelines.prepare("digits")
