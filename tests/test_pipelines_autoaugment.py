"""The vectorised AutoAugment CIFAR-10 policy against PIL and the paper's table."""

import numpy as np
import pytest
import tensorflow as tf

from keras_dropact.pipelines import autoaugment

PIL = pytest.importorskip("PIL")
from PIL import Image, ImageEnhance, ImageOps  # noqa: E402

GREY = (128, 128, 128)


def _images(count=6, seed=0):
    """Structured test images: a horizontal ramp plus noise, values 30..250."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(30, 200, (count, 32, 32, 3))
    ramp = np.linspace(0, 50, 32)[None, None, :, None]
    return np.clip(noise + ramp, 0, 255).astype(np.uint8)


def _pil(image, name, argument):
    """The reference: the PIL call each operation stands for."""
    picture = Image.fromarray(image)
    affine = {
        "ShearX": (1, argument, 0, 0, 1, 0),
        "ShearY": (1, 0, 0, argument, 1, 0),
        "TranslateX": (1, 0, argument, 0, 1, 0),
        "TranslateY": (1, 0, 0, 0, 1, argument),
    }
    if name in affine:
        picture = picture.transform(picture.size, Image.AFFINE, affine[name], fillcolor=GREY)
    elif name == "Rotate":
        picture = picture.rotate(argument, fillcolor=GREY)
    elif name in autoaugment.ENHANCE:
        picture = getattr(ImageEnhance, name)(picture).enhance(argument)
    elif name == "Posterize":
        picture = ImageOps.posterize(picture, int(argument))
    elif name == "Solarize":
        picture = ImageOps.solarize(picture, argument)
    else:
        picture = getattr(ImageOps, name.lower())(picture)
    return np.asarray(picture).astype(np.float32)


CASES = [
    ("AutoContrast", 0), ("Equalize", 0), ("Invert", 0), ("Posterize", 5),
    ("Posterize", 4), ("Solarize", 113.8), ("Color", 1.6), ("Color", 0.3),
    ("Contrast", 1.7), ("Contrast", 0.4), ("Brightness", 1.5),
    ("Brightness", 0.5), ("Sharpness", 1.9), ("Sharpness", 0.2),
    ("ShearX", 0.27), ("ShearY", -0.23), ("TranslateX", 14),
    ("TranslateY", -9), ("Rotate", 20), ("Rotate", -10),
]


@pytest.mark.parametrize("name, argument", CASES)
def test_operation_matches_pil(name, argument):
    images = _images()
    if name == "AutoContrast":
        images = (images * 0.5 + 40).astype(np.uint8)  # room to stretch
    ours = tf.function(lambda x: autoaugment.apply_operation(x, name, argument))(images)
    reference = np.stack([_pil(image, name, argument) for image in images])
    difference = np.abs(ours.numpy() - reference)
    # PIL rounds a few values differently (grey conversion, exact ties of
    # nearest sampling): off by one at most, or at most 0.5 % of pixels.
    assert np.mean(difference == 0) > 0.995 or difference.max() <= 1
    assert np.mean(difference > 1) < 0.002
    assert not np.array_equal(ours.numpy(), images)  # it did something


def test_policy_table_is_the_papers():
    policy = autoaugment.CIFAR10_POLICY
    assert len(policy) == 25 and all(len(sub) == 2 for sub in policy)
    for sub in policy:
        for name, probability, magnitude in sub:
            assert name in autoaugment.OPERATIONS
            assert 0.0 <= probability <= 1.0 and magnitude in range(10)
    assert policy[0] == (("Invert", 0.1, 7), ("Contrast", 0.2, 6))
    assert policy[12] == (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6))
    assert policy[24] == (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, 1))


def _expected_argument(name, magnitude, sign, side=32):
    """The paper's Table 1 ranges over 10 magnitude bins (restated)."""
    fraction = magnitude / 9
    return {
        "ShearX": sign * 0.3 * fraction,
        "ShearY": sign * 0.3 * fraction,
        "TranslateX": sign * 150 / 331 * side * fraction,
        "TranslateY": sign * 150 / 331 * side * fraction,
        "Rotate": sign * 30 * fraction,
        "Color": 1 + sign * 0.9 * fraction,
        "Contrast": 1 + sign * 0.9 * fraction,
        "Brightness": 1 + sign * 0.9 * fraction,
        "Sharpness": 1 + sign * 0.9 * fraction,
        "Posterize": 8 - round(4 * fraction),
        "Solarize": 256 * (1 - fraction),
    }.get(name, 0.0)


@pytest.mark.parametrize("batch_size", [100, 1])
def test_policy_applies_each_images_sub_policy_in_order(batch_size):
    count = 100
    images = _images(count, seed=1)
    rng = np.random.default_rng(2)
    choice = np.arange(count) % 25
    applied = [np.arange(count) // 25 % 2 == 0, np.arange(count) // 50 == 0]
    signs = [rng.choice([-1.0, 1.0], count) for _ in range(2)]
    draws = {
        "choice": choice.astype(np.int32),
        "applied0": applied[0], "applied1": applied[1],
        "sign0": signs[0].astype(np.float32), "sign1": signs[1].astype(np.float32),
    }
    policy = tf.function(autoaugment.apply_policy)
    outputs = [
        policy(images[i:i + batch_size], {k: v[i:i + batch_size] for k, v in draws.items()})
        for i in range(0, count, batch_size)
    ]
    output = np.concatenate(outputs)
    for i in range(count):
        expected = images[i:i + 1].astype(np.float32)
        for position in (0, 1):
            name, _, magnitude = autoaugment.CIFAR10_POLICY[choice[i]][position]
            if applied[position][i]:
                argument = _expected_argument(name, magnitude, signs[position][i])
                expected = autoaugment.apply_operation(expected, name, argument).numpy()
        # ImageEnhance truncates like PIL, so a factor one float32 ulp away
        # (1 + 0.6 summed vs 1.6 given) can move a value by one per operation.
        difference = np.abs(output[i] - expected[0])
        assert difference.max() <= 2 and difference.mean() < 0.5, f"image {i}"


def test_draw_frequencies_follow_the_policy():
    draws = autoaugment.draw(25_000, tf.constant([3, 4], tf.int64))
    choice = draws["choice"].numpy()
    counts = np.bincount(choice, minlength=25)
    assert counts.min() > 850 and counts.max() < 1150  # 1000 expected each
    for position in (0, 1):
        applied = draws[f"applied{position}"].numpy()
        for index, sub in enumerate(autoaugment.CIFAR10_POLICY):
            rate = applied[choice == index].mean()
            assert abs(rate - sub[position][1]) < 0.06, (index, position, rate)
        assert abs((draws[f"sign{position}"].numpy() > 0).mean() - 0.5) < 0.02


def test_autoaugment_changes_images_and_keeps_range():
    images = _images(64)
    out = autoaugment.autoaugment(images, tf.constant([1, 2], tf.int64)).numpy()
    assert out.shape == images.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 255 and np.all(out == np.round(out))
    changed = np.any(out != images, axis=(1, 2, 3)).mean()
    assert 0.5 < changed < 1.0


def test_unknown_operation_lists_valid_ones():
    with pytest.raises(ValueError, match="Unknown AutoAugment operation 'Blur'.*AutoContrast"):
        autoaugment.apply_operation(_images(1), "Blur", 1.0)
