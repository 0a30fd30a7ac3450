"""Batch augmentations: normalisation, pad-crop-flip, Cutout, and their named mixes.

Every function works on a whole batch at once (one `tf.data` map per batch)
and draws its randomness from stateless ops keyed by an explicit seed, so
a seeded pipeline is reproducible however many map calls run in parallel.
(Keras' RandomCrop draws one crop offset per batch and its random layers keep
their seed state in a variable, which is why the random parts are tf ops
here; normalisation is a Keras `Rescaling` layer.)

Named augmentations (`augment=` in `pipelines.load`, `--augment` on the CLI):
  none         normalisation only
  standard     zero padding (4 pixels; 2 on 28x28 Fashion-MNIST), random crop
               back to size, horizontal flip with probability 1/2 (He et al.
               2016), then normalisation
  cutout       standard, normalisation, then Cutout (DeVries & Taylor 2017)
               with the dataset's side (16 CIFAR-10, 8 CIFAR-100, 20 SVHN,
               14 Fashion-MNIST)
  autoaugment  the CIFAR-10 AutoAugment policy, then standard, normalisation
               and Cutout 16 (Cubuk et al. 2019)
"""

import dataclasses
from typing import Optional

import keras
import tensorflow as tf

from keras_dropact.pipelines import autoaugment as autoaugment_lib

PADDING = 4
AUTOAUGMENT_CUTOUT = 16


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """One named augmentation: which stages run, in the fixed order
    AutoAugment policy -> pad/crop/flip -> normalisation -> Cutout."""

    name: str
    description: str
    policy: bool = False
    crop_flip: bool = False
    cutout: bool = False
    # A fixed Cutout side that replaces the dataset's default (AutoAugment).
    cutout_size: Optional[int] = None

    @property
    def is_random(self):
        return self.policy or self.crop_flip or self.cutout


_AUGMENTATIONS = (
    Augmentation("none", "normalisation only"),
    Augmentation(
        "standard",
        "zero pad (the dataset's crop_padding), random crop, horizontal flip, normalisation",
        crop_flip=True,
    ),
    Augmentation(
        "cutout",
        "standard, then Cutout with the dataset's default side",
        crop_flip=True,
        cutout=True,
    ),
    Augmentation(
        "autoaugment",
        "AutoAugment CIFAR-10 policy, then standard and Cutout 16",
        policy=True,
        crop_flip=True,
        cutout=True,
        cutout_size=AUTOAUGMENT_CUTOUT,
    ),
)
AUGMENTATIONS = {a.name: a for a in _AUGMENTATIONS}


def names():
    return tuple(AUGMENTATIONS)


def get(augment):
    """The `Augmentation` for None or a name; ValueError lists valid names."""
    if augment is None:
        augment = "none"
    if augment not in AUGMENTATIONS:
        raise ValueError(
            f"Unknown augmentation {augment!r}. Valid augmentations: "
            f"{', '.join(names())} (or None)."
        )
    return AUGMENTATIONS[augment]


def normalisation_scale_offset(normalisation, channels):
    """Per-channel (scale, offset) with x * scale + offset equal to
    ((x / max_value) - mean) / std; None where the data are used as they are.

    The serving signatures of an export apply these same numbers, so served
    images are normalised exactly as the test pipeline does.
    """
    if normalisation.max_value is None:
        return None
    mean = normalisation.mean or (0.0,) * channels
    std = normalisation.std or (1.0,) * channels
    scale = [1.0 / (normalisation.max_value * s) for s in std]
    offset = [-m / s for m, s in zip(mean, std)]
    return scale, offset


def normalisation_layer(normalisation, channels):
    """A Keras `Rescaling` computing ((x / max_value) - mean) / std.

    Returns None where the data are used as they are (`max_value` None).
    """
    scale_offset = normalisation_scale_offset(normalisation, channels)
    if scale_offset is None:
        return None
    scale, offset = scale_offset
    # Shape (1, 1, C) broadcasts over channels-last batches whatever
    # keras.config.image_data_format() says.
    return keras.layers.Rescaling(
        scale=[[scale]], offset=[[offset]], dtype="float32"
    )


def random_crop_flip(images, seed, padding=PADDING):
    """Zero-pads each image by `padding`, crops a random window of the
    original size and mirrors it left-right with probability 1/2.

    One gather per axis does all three per image. Works for any dtype.

    Args:
        images: (B, H, W, C) batch.
        seed: shape [2] integer seed of the stateless draws.
    """
    batch = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    padded = tf.pad(images, [[0, 0], [padding, padding], [padding, padding], [0, 0]])
    row_seed, col_seed, flip_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 3)
    )
    top = tf.random.stateless_uniform(
        [batch, 1], row_seed, 0, 2 * padding + 1, tf.int32
    )
    left = tf.random.stateless_uniform(
        [batch, 1], col_seed, 0, 2 * padding + 1, tf.int32
    )
    flip = tf.random.stateless_uniform([batch, 1], flip_seed) < 0.5
    rows = top + tf.range(height)
    columns = left + tf.where(flip, tf.range(width - 1, -1, -1), tf.range(width))
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(cropped, columns, axis=2, batch_dims=1)


def apply_cutout(images, centres, size):
    """Zeroes a `size` x `size` square per image, clipped at the border.

    The square covers rows [cy - size // 2, cy - size // 2 + size) and the
    same for columns, intersected with the image.

    Args:
        images: (B, H, W, C) batch.
        centres: (B, 2) integer (row, column) centres.
        size: the square's side in pixels.
    """
    height, width = images.shape[1], images.shape[2]
    start = tf.cast(centres, tf.int32) - size // 2

    def inside(length, first):
        positions = tf.range(length)
        return (positions >= first[:, None]) & (positions < first[:, None] + size)

    in_rows = tf.cast(inside(height, start[:, 0]), images.dtype)
    in_columns = tf.cast(inside(width, start[:, 1]), images.dtype)
    # A (B, H, W, 1) multiplier: several times faster than tf.where here.
    keep = 1 - in_rows[:, :, None, None] * in_columns[:, None, :, None]
    return images * keep


def random_cutout(images, size, seed):
    """Cutout with each centre uniform over the image (DeVries & Taylor)."""
    height, width = images.shape[1], images.shape[2]
    shape = [tf.shape(images)[0]]
    row_seed, col_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    centres = tf.stack(
        [
            tf.random.stateless_uniform(shape, row_seed, 0, height, tf.int32),
            tf.random.stateless_uniform(shape, col_seed, 0, width, tf.int32),
        ],
        axis=1,
    )
    return apply_cutout(images, centres, size)


def make_batch_fn(spec, augmentation, cutout_size=None):
    """The per-batch map function for `spec` and `augmentation`.

    Returns `fn(images, labels, seed)` for random augmentations (seed: shape
    [2] integer tensor, one per batch) and `fn(images, labels)` otherwise;
    images come out float32, labels unchanged.

    Raises:
        ValueError: an image augmentation on 1-D data, a Cutout without a
            size, or a bad `cutout_size`.
    """
    if augmentation.is_random and not spec.is_image:
        raise ValueError(
            f"Augmentation {augmentation.name!r} needs images; {spec.name!r} "
            f"holds 1-D signals of shape {spec.shape}. Use augment=None (--augment none)."
        )
    if cutout_size is not None:
        if isinstance(cutout_size, bool) or not isinstance(cutout_size, int):
            raise ValueError(f"cutout_size must be an int, got {cutout_size!r}.")
        if cutout_size <= 0:
            raise ValueError(f"cutout_size must be positive, got {cutout_size}.")
        if not augmentation.cutout:
            raise ValueError(
                f"cutout_size={cutout_size} has no effect with augmentation "
                f"{augmentation.name!r}; use one with Cutout: "
                f"{', '.join(a.name for a in _AUGMENTATIONS if a.cutout)}."
            )
    size = None
    if augmentation.cutout:
        size = cutout_size or augmentation.cutout_size or spec.cutout_size
        if size is None:
            raise ValueError(
                f"Augmentation {augmentation.name!r} needs a Cutout size and "
                f"{spec.name!r} has no default; pass cutout_size=."
            )
    rescale = normalisation_layer(spec.normalisation, spec.shape[-1])

    def normalise(images):
        if rescale is None:
            return tf.cast(images, tf.float32)
        return rescale(images)

    if not augmentation.is_random:
        return lambda images, labels: (normalise(images), labels)

    def augment(images, labels, seed):
        policy_seed, crop_seed, cutout_seed = tf.unstack(
            tf.random.experimental.stateless_split(seed, 3)
        )
        if augmentation.policy:
            images = autoaugment_lib.autoaugment(images, policy_seed)
        if augmentation.crop_flip:
            images = random_crop_flip(images, crop_seed, spec.crop_padding)
        images = normalise(images)
        if augmentation.cutout:
            images = random_cutout(images, size, cutout_seed)
        return images, labels

    return augment
