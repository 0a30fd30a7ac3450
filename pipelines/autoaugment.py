"""AutoAugment's CIFAR-10 policy (Cubuk et al. 2019), vectorised over a batch.

Each image draws one of the 25 sub-policies uniformly; a sub-policy is two
operations applied in order, each with its own probability. Magnitudes are
indices 0..9 into the ranges of the AutoAugment paper's Table 1, read as the
common PyTorch implementations (DeepVoltaire/AutoAugment, torchvision) do:

  ShearX/Y      shear 0.3 * m/9, random sign, about the top-left corner (PIL)
  TranslateX/Y  (150/331) * m/9 of the image side, random sign
  Rotate        30 * m/9 degrees, random sign
  Color, Contrast, Brightness, Sharpness
                PIL ImageEnhance factor 1 + 0.9 * m/9, random sign
  Posterize     keep 8 - round(4 * m/9) bits
  Solarize      invert pixels >= 256 * (1 - m/9)
  AutoContrast, Equalize, Invert: no magnitude (PIL ImageOps semantics)

Geometric operations sample the nearest pixel and fill uncovered pixels with
grey 128 (DeepVoltaire's `fillcolor`). Images are uint8 in, float32 in
[0, 255] out (integral values).

The batch is transformed position by position (first, then second operation
of each image's sub-policy): images are partitioned by the operation they
drew, each operation runs on its own part only (the geometric ones as one
per-image affine transform), and the parts are stitched back in order.
"""

import math

import tensorflow as tf

# (operation, probability, magnitude index), two per sub-policy: the
# AutoAugment paper's CIFAR-10 policy (its appendix table), in its order.
CIFAR10_POLICY = (
    (("Invert", 0.1, 7), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, 8), ("Equalize", 0.9, 2)),
    (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, 5), ("Equalize", 0.5, 1)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
    (("Equalize", 0.3, 7), ("AutoContrast", 0.4, 8)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, 3)),
    (("Equalize", 0.2, 0), ("AutoContrast", 0.6, 0)),
    (("Equalize", 0.2, 8), ("Equalize", 0.6, 4)),
    (("Color", 0.9, 9), ("Equalize", 0.6, 6)),
    (("AutoContrast", 0.8, 4), ("Solarize", 0.2, 8)),
    (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, 3)),
    (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, 2), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, 8), ("Invert", 0.1, 3)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, 1)),
)
FILL_VALUE = 128.0
GEOMETRIC = ("Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY")
ENHANCE = ("Brightness", "Color", "Contrast", "Sharpness")
# Magnitude index m (0..9) to the size of the operation's argument, before
# its random sign. Arguments: Rotate degrees; Shear the shear factor;
# Translate a fraction of the side (pixels once the image size is known);
# ImageEnhance operations the distance of the factor from 1; Posterize the
# bits kept; Solarize the threshold.
MAGNITUDE = {
    "ShearX": lambda m: 0.3 * m / 9,
    "ShearY": lambda m: 0.3 * m / 9,
    "TranslateX": lambda m: 150 / 331 * m / 9,
    "TranslateY": lambda m: 150 / 331 * m / 9,
    "Rotate": lambda m: 30 * m / 9,
    "Color": lambda m: 0.9 * m / 9,
    "Contrast": lambda m: 0.9 * m / 9,
    "Brightness": lambda m: 0.9 * m / 9,
    "Sharpness": lambda m: 0.9 * m / 9,
    "Posterize": lambda m: 8 - round(4 * m / 9),
    "Solarize": lambda m: 256 * (1 - m / 9),
    "AutoContrast": lambda m: 0.0,
    "Equalize": lambda m: 0.0,
    "Invert": lambda m: 0.0,
}
OPERATIONS = tuple(sorted(MAGNITUDE))


def _grey(images):
    """PIL's RGB -> L conversion (ITU-R 601-2 luma), kept as one channel."""
    if images.shape[-1] == 1:
        return images
    weights = tf.constant([0.299, 0.587, 0.114], images.dtype)
    return tf.reduce_sum(images * weights, axis=-1, keepdims=True)


def _blend(degenerate, images, factor):
    """PIL ImageEnhance: degenerate + factor * (image - degenerate), as uint8
    (PIL truncates)."""
    return tf.floor(
        tf.clip_by_value(degenerate + factor * (images - degenerate), 0.0, 255.0)
    )


def _color(images, factor):
    return _blend(tf.round(_grey(images)), images, factor)


def _contrast(images, factor):
    mean = tf.reduce_mean(tf.round(_grey(images)), axis=[1, 2, 3], keepdims=True)
    return _blend(tf.round(mean), images, factor)


def _brightness(images, factor):
    return _blend(tf.zeros_like(images), images, factor)


def _sharpness(images, factor):
    """Blend with PIL's SMOOTH filter (3x3, centre 5, others 1, over 13)."""
    channels = images.shape[-1]
    kernel = tf.constant([[1, 1, 1], [1, 5, 1], [1, 1, 1]], tf.float32) / 13.0
    kernel = tf.tile(kernel[:, :, None, None], [1, 1, channels, 1])
    # "SAME" keeps the shape for every batch size (a "VALID" convolution of
    # an empty batch comes back unshrunk); the border is replaced below.
    smooth = tf.round(tf.nn.depthwise_conv2d(images, kernel, [1, 1, 1, 1], "SAME"))
    # PIL leaves the one-pixel border unfiltered.
    height, width = images.shape[1], images.shape[2]
    interior = tf.pad(
        tf.ones([1, height - 2, width - 2, 1], tf.bool),
        [[0, 0], [1, 1], [1, 1], [0, 0]],
    )
    degenerate = tf.where(interior, smooth, images)
    return _blend(degenerate, images, factor)


def _posterize(images, bits):
    # Shifts outside 0..8 are undefined for int32; the policy uses 4..8.
    shift = tf.clip_by_value(tf.cast(8 - bits, tf.int32), 0, 8)
    pixels = tf.cast(images, tf.int32)
    return tf.cast(
        tf.bitwise.left_shift(tf.bitwise.right_shift(pixels, shift), shift),
        tf.float32,
    )


def _solarize(images, threshold):
    return tf.where(images < threshold, images, 255.0 - images)


def _invert(images, unused):
    return 255.0 - images


def _autocontrast(images, unused):
    """Stretch each channel of each image to [0, 255] (PIL autocontrast)."""
    low = tf.reduce_min(images, axis=[1, 2], keepdims=True)
    high = tf.reduce_max(images, axis=[1, 2], keepdims=True)
    scale = 255.0 / tf.maximum(high - low, 1.0)
    stretched = tf.clip_by_value((images - low) * scale, 0.0, 255.0)
    return tf.where(high > low, tf.floor(stretched), images)


def _equalize(images, unused):
    """PIL ImageOps.equalize per channel of each image, with one bincount."""
    batch = tf.shape(images)[0]
    height, width, channels = images.shape[1:]
    pixels = tf.cast(images, tf.int32)
    # (B, C, H*W) values, each offset into its own 256-bin histogram.
    values = tf.reshape(tf.transpose(pixels, [0, 3, 1, 2]), [batch, channels, -1])
    offsets = tf.reshape(tf.range(batch * channels) * 256, [batch, channels, 1])
    ids = values + offsets
    histogram = tf.reshape(
        tf.math.bincount(tf.reshape(ids, [-1]), minlength=batch * channels * 256),
        [batch, channels, 256],
    )
    # PIL: step = (count - count of the last non-empty bin) // 255.
    top = tf.reduce_max(values, axis=-1, keepdims=True)
    last = tf.gather(histogram, top, batch_dims=2)
    step = (height * width - last) // 255
    safe_step = tf.maximum(step, 1)
    cumulative = tf.cumsum(histogram, axis=-1, exclusive=True)
    lut = tf.minimum((cumulative + safe_step // 2) // safe_step, 255)
    lut = tf.where(step > 0, lut, tf.range(256))
    equalized = tf.gather(tf.reshape(lut, [-1]), ids)
    equalized = tf.transpose(
        tf.reshape(equalized, [batch, channels, height, width]), [0, 2, 3, 1]
    )
    return tf.cast(equalized, tf.float32)


_PIXEL_OPS = {
    "AutoContrast": _autocontrast,
    "Brightness": _brightness,
    "Color": _color,
    "Contrast": _contrast,
    "Equalize": _equalize,
    "Invert": _invert,
    "Posterize": _posterize,
    "Sharpness": _sharpness,
    "Solarize": _solarize,
}


def _affine(ops, arguments, height, width):
    """Per-image output->input affine maps in ImageProjectiveTransform layout.

    Rotation turns about the centre; shears pivot on the top-left corner as
    PIL's `Image.transform(AFFINE)` does; translations move by whole pixels
    given in `arguments`. Images with another operation get the identity.
    """
    zeros = tf.zeros_like(arguments)
    ones = tf.ones_like(arguments)
    angle = arguments * (math.pi / 180.0)
    cos, sin = tf.cos(angle), tf.sin(angle)
    x_offset = ((width - 1) - (cos * (width - 1) - sin * (height - 1))) / 2
    y_offset = ((height - 1) - (sin * (width - 1) + cos * (height - 1))) / 2
    maps = {
        "Rotate": [cos, -sin, x_offset, sin, cos, y_offset],
        # PIL samples at pixel centres: the half-pixel terms match its choice
        # of source pixel (up to exact ties).
        "ShearX": [ones, arguments, arguments / 2, zeros, ones, zeros],
        "ShearY": [ones, zeros, zeros, arguments, ones, arguments / 2],
        "TranslateX": [ones, zeros, arguments, zeros, ones, zeros],
        "TranslateY": [ones, zeros, zeros, zeros, ones, arguments],
    }
    transforms = tf.stack([ones, zeros, zeros, zeros, ones, zeros, zeros, zeros], 1)
    for name, rows in maps.items():
        matrix = tf.stack(rows + [zeros, zeros], 1)
        chosen = tf.equal(ops, OPERATIONS.index(name))[:, None]
        transforms = tf.where(chosen, matrix, transforms)
    return transforms


def _apply(images, ops, arguments, candidates):
    """Applies to each image the operation `ops` names with its argument.

    The batch is split by operation (`tf.dynamic_partition`), each operation
    runs on its own images only (all geometric ones as one affine transform),
    and `tf.dynamic_stitch` puts the images back in order: every image costs
    one operation, not one per candidate.

    Args:
        images: (B, H, W, C) float32 in [0, 255].
        ops: (B,) int32 indices into OPERATIONS; -1 leaves an image alone.
        arguments: (B,) float32 arguments in the operations' own units.
        candidates: the operation names that may occur (static).
    """
    height, width = images.shape[1], images.shape[2]
    # Group 0 is "unchanged"; then one group for all geometric operations
    # (if any may occur) and one per pixel operation.
    groups = [None]
    if set(candidates) & set(GEOMETRIC):
        groups.append(GEOMETRIC)
    groups += sorted(set(candidates) - set(GEOMETRIC))
    group_of = [0] * (len(OPERATIONS) + 1)  # Indexed by op + 1.
    for group_id, group in enumerate(groups[1:], start=1):
        for name in (group if group == GEOMETRIC else (group,)):
            group_of[OPERATIONS.index(name) + 1] = group_id
    group_ids = tf.gather(tf.constant(group_of, tf.int32), ops + 1)
    count = len(groups)
    positions = tf.dynamic_partition(
        tf.range(tf.shape(images)[0]), group_ids, count
    )
    image_parts = tf.dynamic_partition(images, group_ids, count)
    op_parts = tf.dynamic_partition(ops, group_ids, count)
    argument_parts = tf.dynamic_partition(arguments, group_ids, count)
    results = [image_parts[0]]
    for group_id, group in enumerate(groups[1:], start=1):
        part, part_arguments = image_parts[group_id], argument_parts[group_id]
        if group == GEOMETRIC:
            result = tf.raw_ops.ImageProjectiveTransformV3(
                images=part,
                transforms=_affine(op_parts[group_id], part_arguments, height, width),
                output_shape=[height, width],
                fill_value=FILL_VALUE,
                interpolation="NEAREST",
                fill_mode="CONSTANT",
            )
        else:
            result = _PIXEL_OPS[group](part, tf.reshape(part_arguments, [-1, 1, 1, 1]))
        results.append(result)
    return tf.dynamic_stitch(positions, results)


def apply_operation(images, name, argument):
    """Applies one AutoAugment operation to every image of a batch.

    Args:
        images: (B, H, W, C) uint8 or float images with values in [0, 255].
        name: one of OPERATIONS.
        argument: scalar or (B,) in the operation's units: Rotate degrees
            (counter-clockwise), ShearX/ShearY factor, TranslateX/TranslateY
            pixels (the content moves left/up for positive values), ImageEnhance
            factor (1 = unchanged), Posterize bits kept, Solarize threshold;
            ignored by AutoContrast, Equalize and Invert.

    Returns:
        float32 images with integral values in [0, 255].
    """
    if name not in OPERATIONS:
        raise ValueError(
            f"Unknown AutoAugment operation {name!r}. Valid: {', '.join(OPERATIONS)}."
        )
    images = tf.cast(images, tf.float32)
    batch = tf.shape(images)[0]
    ops = tf.fill([batch], OPERATIONS.index(name))
    arguments = tf.broadcast_to(tf.cast(argument, tf.float32), [batch])
    return _apply(images, ops, arguments, {name})


def _position_table(position, height, width):
    """Operation `position` (0 or 1) of every sub-policy, as Python lists.

    An image's argument is `offset + sign * spread`: signed operations
    (geometric ones around 0, ImageEnhance ones around 1) spread by their
    magnitude, the others take their magnitude as a fixed offset.
    """
    table = {"op": [], "probability": [], "offset": [], "spread": []}
    for sub_policy in CIFAR10_POLICY:
        name, probability, magnitude = sub_policy[position]
        size = MAGNITUDE[name](magnitude)
        if name == "TranslateX":
            size *= width
        elif name == "TranslateY":
            size *= height
        signed = name in GEOMETRIC or name in ENHANCE
        table["op"].append(OPERATIONS.index(name))
        table["probability"].append(probability)
        table["offset"].append(1.0 if name in ENHANCE else 0.0 if signed else size)
        table["spread"].append(size if signed else 0.0)
    return table


def draw(batch, seed):
    """The random choices for a batch: a dict of (B,) tensors.

    "choice": the sub-policy index per image; "applied0"/"applied1": whether
    its first/second operation fires (with the policy's probability);
    "sign0"/"sign1": +1 or -1 for the operations' arguments.
    """
    seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 5))
    choice = tf.random.stateless_uniform(
        [batch], seeds[0], 0, len(CIFAR10_POLICY), tf.int32
    )
    draws = {"choice": choice}
    for position in (0, 1):
        probabilities = tf.gather(
            _position_table(position, 1, 1)["probability"], choice
        )
        uniform = tf.random.stateless_uniform([batch], seeds[1 + position])
        draws[f"applied{position}"] = uniform < probabilities
        coin = tf.random.stateless_uniform([batch], seeds[3 + position])
        draws[f"sign{position}"] = tf.where(coin < 0.5, -1.0, 1.0)
    return draws


def apply_policy(images, draws):
    """Applies each image's drawn sub-policy: first operation, then second."""
    images = tf.cast(images, tf.float32)
    height, width = images.shape[1], images.shape[2]
    choice = draws["choice"]
    for position in (0, 1):
        table = _position_table(position, height, width)
        ops = tf.gather(tf.constant(table["op"], tf.int32), choice)
        offset = tf.gather(tf.constant(table["offset"], tf.float32), choice)
        spread = tf.gather(tf.constant(table["spread"], tf.float32), choice)
        arguments = offset + draws[f"sign{position}"] * spread
        ops = tf.where(draws[f"applied{position}"], ops, -1)
        candidates = {OPERATIONS[i] for i in table["op"]}
        images = _apply(images, ops, arguments, candidates)
    return images


def autoaugment(images, seed):
    """Applies the CIFAR-10 AutoAugment policy to a batch of uint8 images.

    Args:
        images: (B, H, W, C) uint8 (or integral float) images, C 1 or 3.
        seed: a shape [2] integer tensor for the stateless random ops.

    Returns:
        (B, H, W, C) float32 images with integral values in [0, 255].
    """
    return apply_policy(images, draw(tf.shape(images)[0], seed))
