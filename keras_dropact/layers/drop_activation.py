"""The Drop-Activation layer (Liang, Khoo, Yang 2018, arXiv 1811.05850)."""

import numbers

import keras
from keras import ops

from keras_dropact.layers.activations import resolve_activation
from keras_dropact.random import ReplicaSeedGenerator
from keras_dropact.random import bernoulli
from keras_dropact.random import check_sampler
from keras_dropact.random import device_of

# The paper's probability of keeping the nonlinearity (Section 4); every
# default of `p` in the package (layer, model factory, CLI) is this one.
DEFAULT_KEEP_PROBABILITY = 0.95

def check_keep_probability(p):
    """Returns `p` as a float if it is a probability of keeping f, in (0, 1].

    The one check of Drop-Activation's `p`, shared by the layer, the model
    factory, the training configuration and the theory helpers.

    Raises:
        ValueError: naming the bad value and the valid range.
    """
    if (
        isinstance(p, bool)
        or not isinstance(p, numbers.Real)
        or not 0.0 < float(p) <= 1.0
    ):
        raise ValueError(
            "Invalid value received for argument `p` (the probability of "
            "keeping the nonlinearity). Expected a number in (0, 1], "
            f"e.g. 0.95. Received: p={p!r}"
        )
    return float(p)


@keras.saving.register_keras_serializable(package="keras_dropact")
class DropActivation(keras.layers.Layer):
    """Randomly replaces an elementwise nonlinearity by the identity.

    In training, every element of every example keeps the nonlinearity f with
    probability `p` and passes through unchanged otherwise, with a fresh draw
    at every call (paper eq. 3; for ReLU, eq. 4):

        y = x + P * (f(x) - x),    P ~ Bernoulli(p) per element.

    In inference the layer uses the expectation over P (eq. 5):

        y = (1 - p) * x + p * f(x),

    which for ReLU is exactly `leaky_relu(x, negative_slope=1 - p)`; the
    inference path holds no random op, so exported models are deterministic.

    Args:
        p: probability of *keeping* the nonlinearity, a number in (0, 1].
            The paper uses 0.95. `p=1` is the plain activation.
        activation: an elementwise nonlinearity: the name of a Keras
            activation (`"relu"`, `"gelu"`, `"tanh"`, ...) or a registered
            serializable callable. Defaults to `"relu"`.
        seed: integer seed of the random masks, for reproducible training.
        sampler: how the masks are drawn: `"auto"` (default) picks per
            backend and device, `"bytes"` on CPUs (a quarter of the random
            bits, with an exact sparse correction), `"bits"` on GPUs and TPUs
            (one 32-bit word per element, purely elementwise, so it fuses
            and compiles like ReLU); see `keras_dropact.random.bernoulli`.
            Both are exact Bernoulli(p) draws: the choice changes speed and
            the particular masks, not the model, so a model trained with one
            loads and trains with the other.
        **kwargs: base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: a floating-point tensor of any rank.
        training: Python boolean; if true, draw random masks (eq. 3),
            otherwise apply the deterministic expectation (eq. 5).

    Example:

    >>> layer = DropActivation(p=0.95)
    >>> x = keras.ops.convert_to_tensor([[-2.0, 1.0]])
    >>> keras.ops.convert_to_numpy(layer(x))  # LeakyReLU with slope 0.05
    array([[-0.1,  1. ]], dtype=float32)
    """

    def __init__(
        self,
        p=DEFAULT_KEEP_PROBABILITY,
        activation="relu",
        seed=None,
        sampler="auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.p = check_keep_probability(p)
        self.activation_fn, self.activation = resolve_activation(activation)
        self.seed = seed
        self.sampler = check_sampler(sampler)
        if self.p < 1.0:
            self.seed_generator = ReplicaSeedGenerator(seed)
        self.supports_masking = True
        self._build_at_init()

    def call(self, inputs, training=False):
        # PyTorch: masks and outputs on the input's device (Keras' default
        # device otherwise); a no-op on the other backends.
        with device_of(inputs):
            return self._apply(inputs, training)

    def _apply(self, inputs, training):
        if self.p == 1.0:
            return self.activation_fn(inputs)
        if not training:
            if self.activation == "relu":
                return ops.leaky_relu(inputs, negative_slope=1.0 - self.p)
            return (1.0 - self.p) * inputs + self.p * self.activation_fn(inputs)
        dropped = self._sample_dropped(inputs)
        if self.activation == "relu":
            # y = x where x > 0 or f is dropped, else 0: one multiply by a
            # constant 0/1 mask, so the backward pass is one multiply too
            # (gradient 1 where dropped, relu'(x) where kept).
            passes = ops.logical_or(ops.greater(inputs, 0), dropped)
            return inputs * ops.cast(passes, inputs.dtype)
        # Eq. 3 as a select rather than x + P * (f(x) - x): outputs are then
        # exactly x or f(x), also where f(x) - x overflows. The gradient is
        # f'(x) where kept and 1 where dropped.
        return ops.where(dropped, inputs, self.activation_fn(inputs))

    def _sample_dropped(self, inputs):
        """A fresh boolean mask shaped like `inputs`: True where f is dropped.

        Drawn as the rare outcome (dropped, probability 1 - p) so that the
        "bytes" sampler needs no negation; see `bernoulli` for the samplers'
        cost and bias. The mask is made for the device of `inputs`.
        """
        return bernoulli(
            ops.shape(inputs),
            1.0 - self.p,
            self.seed_generator,
            sampler=self.sampler,
            like=inputs,
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "p": self.p,
                "activation": self.activation,
                "seed": self.seed,
                "sampler": self.sampler,
            }
        )
        return config
