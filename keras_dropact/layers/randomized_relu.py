"""Randomized leaky ReLU (Xu et al. 2015), the paper's RReLU baseline."""

import numbers

import keras
from keras import ops

from keras_dropact.random import ReplicaSeedGenerator
from keras_dropact.random import device_of


@keras.saving.register_keras_serializable(package="keras_dropact")
class RandomizedReLU(keras.layers.Layer):
    """Leaky ReLU whose negative slope is random in training.

    In training each negative element is multiplied by its own slope drawn
    from U(lower, upper) at every call; in inference by the mean slope:

        training:  y = x if x >= 0 else a * x,   a ~ U(lower, upper)
        inference: y = x if x >= 0 else (lower + upper) / 2 * x

    The defaults 1/8 and 1/3 are those of Xu et al. (2015) and of the
    Drop-Activation paper's comparison (mean slope 11/48).

    Its random draw is one float uniform per element: elementwise on every
    device already (no scatter or cumsum), so it has no `sampler` choice
    like `DropActivation`'s; on PyTorch the slopes are drawn on the input's
    device.

    Args:
        lower: smallest negative slope, a number >= 0.
        upper: largest negative slope, a number >= `lower`.
        seed: integer seed of the random slopes.
        **kwargs: base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: a floating-point tensor of any rank.
        training: Python boolean; random slopes if true, the mean otherwise.
    """

    def __init__(self, lower=1.0 / 8.0, upper=1.0 / 3.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("lower", lower), ("upper", upper)):
            if (
                isinstance(value, bool)
                or not isinstance(value, numbers.Real)
                or not 0.0 <= float(value) < float("inf")
            ):
                raise ValueError(
                    f"Invalid value received for argument `{name}` (a negative "
                    "slope). Expected a finite number >= 0. "
                    f"Received: {name}={value!r}"
                )
        if lower > upper:
            raise ValueError(
                "Invalid values received for arguments `lower` and `upper`: "
                f"expected lower <= upper. Received: lower={lower}, "
                f"upper={upper}"
            )
        self.lower = float(lower)
        self.upper = float(upper)
        self.seed = seed
        self.seed_generator = ReplicaSeedGenerator(seed)
        self.supports_masking = True
        self._build_at_init()

    def call(self, inputs, training=False):
        # PyTorch: slopes and outputs on the input's device (Keras' default
        # device otherwise); a no-op on the other backends.
        with device_of(inputs):
            if not training or self.lower == self.upper:
                mean_slope = (self.lower + self.upper) / 2.0
                return ops.leaky_relu(inputs, negative_slope=mean_slope)
            slope = keras.random.uniform(
                ops.shape(inputs),
                minval=self.lower,
                maxval=self.upper,
                dtype=self.compute_dtype,
                seed=self.seed_generator,
            )
            return ops.where(inputs >= 0, inputs, slope * inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {"lower": self.lower, "upper": self.upper, "seed": self.seed}
        )
        return config
