"""Reading an image at another size or with other channels: one rule everywhere.

A `folder:` dataset's images, any registered dataset read with `--image-size`
or `--channels`, and every file an export's `serve_image_bytes` signature or
`dropact predict` receives go through these two functions, so that a model
sees the same pixels in training and in serving:

- `to_channels`: alpha dropped, grayscale repeated into RGB, RGB to
  grayscale with `tf.image.rgb_to_grayscale` (ITU-R BT.601 weights);
- `resize`: bilinear `tf.image.resize` to height x width (the aspect ratio
  is not kept), rounded and clipped back to uint8.
"""

import tensorflow as tf


def to_channels(image, channels):
    """uint8 [H, W, 1..4] -> [H, W, channels] (`channels` 1 or 3)."""
    image = tf.cond(tf.equal(tf.shape(image)[-1] % 2, 0), lambda: image[..., :-1], lambda: image)
    have = tf.shape(image)[-1]
    if channels == 3:
        return tf.cond(tf.equal(have, 1), lambda: tf.tile(image, [1, 1, 3]), lambda: image)
    return tf.cond(tf.equal(have, 3), lambda: tf.image.rgb_to_grayscale(image), lambda: image)


def resize(image, height, width):
    """uint8 [H, W, C] -> uint8 [height, width, C]: bilinear, rounded, clipped."""
    resized = tf.image.resize(image, (height, width))
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def read_as(image, shape):
    """uint8 [H, W, C] -> uint8 `shape` (height, width, channels): the
    channels converted, then the size changed (`to_channels`, `resize`)."""
    height, width, channels = shape
    image = resize(to_channels(image, channels), height, width)
    return tf.ensure_shape(image, shape)
