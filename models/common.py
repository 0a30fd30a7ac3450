"""Building blocks shared by every model family.

`LayerFactory` makes the layers of a network with the reference (PyTorch)
defaults that Keras does not share: bias-free convolutions, BatchNorm with
momentum 0.9 and epsilon 1e-5, PyTorch's symmetric padding for strided
convolutions, PyTorch-style L2 weight decay on every trainable weight, and one
nonlinearity (an `act_layer`, see `keras_dropact.layers.get_act_layer`) at
every activation site, with a distinct seed per stochastic layer.
"""

import numbers

import keras

from keras_dropact.layers import SiteSeeds
from keras_dropact.layers import get_act_layer

# PyTorch's BatchNorm2d(momentum=0.1, eps=1e-5) in Keras' convention.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def pytorch_l2(weight_decay):
    """The Keras regularizer equal to PyTorch SGD's `weight_decay`.

    PyTorch adds `weight_decay * w` to each gradient, the gradient of
    `weight_decay / 2 * ||w||^2`; `keras.regularizers.L2(l)` adds
    `l * ||w||^2` to the loss, so `l = weight_decay / 2`. Returns None for a
    falsy `weight_decay` (no decay).
    """
    if weight_decay is None or weight_decay == 0:
        return None
    if (
        isinstance(weight_decay, bool)
        or not isinstance(weight_decay, numbers.Real)
        or weight_decay < 0
    ):
        raise ValueError(
            "Invalid value received for argument `weight_decay`: expected a "
            f"number >= 0 (e.g. 1e-4 or 5e-4). Received: {weight_decay!r}"
        )
    return keras.regularizers.L2(weight_decay / 2.0)


class LayerFactory:
    """Applies reference-faithful layers to symbolic tensors.

    One factory builds one network: it numbers the activation and dropout
    sites in construction order so that, given `seed`, the layer of site i
    gets the seed `seed + i` (distinct, reproducible masks per layer).

    Args:
        act_layer: the nonlinearity of every activation site: a factory
            `act_layer(seed=..., name=...)` or a name, both as for
            `keras_dropact.layers.get_act_layer` (a name gets the default p).
        seed: base seed, or None for unseeded (non-reproducible) layers.
        weight_decay: PyTorch-style L2 coefficient (see `pytorch_l2`), or None.
    """

    def __init__(self, act_layer="dropact", seed=None, weight_decay=None):
        self.act_layer = get_act_layer(act_layer)
        self.seeds = SiteSeeds(seed)
        self.regularizer = pytorch_l2(weight_decay)

    def act(self, x, name):
        """The network's nonlinearity (every ReLU site of the reference)."""
        return self.act_layer(seed=self.seeds.next(), name=name)(x)

    def conv(self, x, filters, kernel_size, strides=1, groups=1, name=None, use_bias=False):
        """A convolution padded as PyTorch's `padding=k // 2`.

        Bias-free by default (a BatchNorm follows every convolution of the
        paper's networks); `use_bias=True` for a network without BatchNorm.

        Keras' `padding="same"` with stride 2 pads only the bottom/right
        side, which shifts the sampling grid by one pixel against the
        reference (and against the strided shortcuts); strided convolutions
        therefore get explicit symmetric zero padding.
        """
        pad = kernel_size // 2
        if strides > 1 and pad > 0:
            x = keras.layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
            padding = "valid"
        else:
            padding = "same"
        return keras.layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            groups=groups,
            use_bias=use_bias,
            # The reference codes' init: normal, std sqrt(2 / (k * k * out)).
            # A fresh instance per layer: an unseeded Keras initializer
            # returns the same values at every call.
            kernel_initializer=keras.initializers.VarianceScaling(
                scale=2.0, mode="fan_out", distribution="untruncated_normal"
            ),
            kernel_regularizer=self.regularizer,
            bias_regularizer=self.regularizer if use_bias else None,
            name=name,
        )(x)

    def bn(self, x, name):
        return keras.layers.BatchNormalization(
            momentum=BN_MOMENTUM,
            epsilon=BN_EPSILON,
            gamma_regularizer=self.regularizer,
            beta_regularizer=self.regularizer,
            name=name,
        )(x)

    def dense(self, x, units, name):
        return keras.layers.Dense(
            units,
            kernel_regularizer=self.regularizer,
            bias_regularizer=self.regularizer,
            name=name,
        )(x)

    def dropout(self, x, rate, name):
        if not rate:
            return x
        return keras.layers.Dropout(rate, seed=self.seeds.next(), name=name)(x)

    def classifier(self, x, num_classes):
        """Global average pooling and a biased linear layer giving logits."""
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        return self.dense(x, num_classes, name="logits")


def check_choice(argument, value, choices):
    """Raises a ValueError unless `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(
            f"Invalid value received for argument `{argument}`: {value!r}. "
            f"Expected one of {', '.join(map(repr, choices))}."
        )


def check_depth(family, depth, per_block, extra):
    """Returns n for a depth of the form `per_block * n + extra`, n >= 1.

    Raises a ValueError naming the valid depths otherwise (e.g. a WRN of
    depth 20: WRN depths are 6n + 4).
    """
    valid = (
        isinstance(depth, int)
        and not isinstance(depth, bool)
        and depth > extra
        and (depth - extra) % per_block == 0
    )
    if not valid:
        first = ", ".join(str(per_block * k + extra) for k in range(1, 4))
        raise ValueError(
            f"Invalid value received for argument `depth` of {family}: "
            f"{depth!r}. {family} depths are {per_block}n + {extra} with "
            f"n >= 1 ({first}, ...)."
        )
    return (depth - extra) // per_block
