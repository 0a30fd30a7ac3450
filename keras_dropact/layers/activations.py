"""Resolving the nonlinearity that Drop-Activation randomly drops.

Drop-Activation is defined for an *elementwise* nonlinearity f (paper eq. 1):
dropping f at one element must not change any other element. Activations that
mix elements (softmax, log_softmax, glu, sparsemax) are rejected here, both by
name and by probing a callable, so that a mistake fails when the layer is
created instead of training a different model silently. Names resolve as
Keras resolves them (`keras_activation_name`: "swish" is "silu"), and
`ReLUVariant` is the function of a `keras.layers.ReLU` with a `max_value`,
`negative_slope` or `threshold`, for `DropActivation` and `convert`.
"""

import numbers

import numpy as np

import keras
from keras import ops

# Keras' built-in activations that act on each element on its own.
ELEMENTWISE_ACTIVATIONS = (
    "celu",
    "elu",
    "exponential",
    "gelu",
    "hard_shrink",
    "hard_sigmoid",
    "hard_silu",
    "hard_swish",
    "hard_tanh",
    "leaky_relu",
    "log_sigmoid",
    "mish",
    "relu",
    "relu6",
    "selu",
    "sigmoid",
    "silu",
    "soft_shrink",
    "softplus",
    "softsign",
    "sparse_plus",
    "squareplus",
    "swish",
    "tanh",
    "tanh_shrink",
)

_PROBE = np.linspace(-3.0, 3.0, 12, dtype="float32")


def keras_activation_name(name):
    """Returns the name Keras saves the elementwise activation `name` under.

    Names are resolved as `keras.activations.get` resolves them: aliases
    become the function's own name ("swish" -> "silu", "hard_swish" ->
    "hard_silu").

    Raises:
        ValueError: in one line, naming `name` and the valid names, if it is
            not the name of an elementwise Keras activation.
    """
    if not isinstance(name, str) or name not in ELEMENTWISE_ACTIVATIONS:
        raise ValueError(
            "Invalid value received for argument `activation`: "
            f"{name!r} is not an elementwise Keras activation. "
            f"Expected one of {', '.join(ELEMENTWISE_ACTIVATIONS)}."
        )
    return keras.activations.serialize(keras.activations.get(name))


def resolve_activation(activation):
    """Returns `(callable, serialized_name)` for an elementwise activation.

    Args:
        activation: the name of a built-in elementwise Keras activation, or a
            callable (register it with
            `keras.saving.register_keras_serializable` so that models using it
            can be saved and loaded), e.g. a `ReLUVariant`.

    Raises:
        ValueError: for unknown names, non-elementwise activations, or
            anything that is neither a string nor a callable.
    """
    if isinstance(activation, str):
        keras_activation_name(activation)
        return keras.activations.get(activation), activation
    if isinstance(activation, dict):  # A serialized registered callable.
        fn = keras.saving.deserialize_keras_object(activation)
        return _check_elementwise(fn), activation
    if not callable(activation):
        raise ValueError(
            "Invalid value received for argument `activation`: expected the "
            "name of an elementwise Keras activation or a callable. "
            f"Received: activation={activation!r}"
        )
    return _check_elementwise(activation), keras.activations.serialize(
        activation
    )


def _check_elementwise(fn):
    """Rejects `fn` if an element's output depends on the other elements.

    Applies `fn` to the same 12 numbers laid out as 3x4 and as 4x3: an
    elementwise function gives the same numbers both ways, anything that
    normalises or pairs elements along an axis (softmax, glu) does not.
    """
    name = getattr(fn, "__name__", repr(fn))
    try:
        wide = ops.convert_to_numpy(fn(ops.convert_to_tensor(_PROBE.reshape(3, 4))))
        tall = ops.convert_to_numpy(fn(ops.convert_to_tensor(_PROBE.reshape(4, 3))))
    except Exception as error:  # noqa: BLE001 - reported with context.
        raise ValueError(
            f"Invalid value received for argument `activation`: calling "
            f"{name} on a float32 tensor failed ({error})."
        ) from error
    if wide.shape != (3, 4) or not np.allclose(
        wide.reshape(-1), tall.reshape(-1), rtol=1e-5, atol=1e-6
    ):
        raise ValueError(
            f"Invalid value received for argument `activation`: {name} is not "
            "elementwise (its output for one element depends on the others, "
            "as softmax's does). Drop-Activation needs an elementwise "
            f"nonlinearity such as {', '.join(ELEMENTWISE_ACTIVATIONS[:6])}..."
        )
    return fn


# The arguments of `keras.activations.relu` and their defaults.
_RELU_DEFAULTS = {"max_value": None, "negative_slope": 0.0, "threshold": 0.0}


def _non_negative(key, value):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not value >= 0
    ):
        raise ValueError(
            f"Invalid value received for argument `{key}` of ReLUVariant: "
            f"expected a number >= 0. Received: {key}={value!r}"
        )
    return float(value)


@keras.saving.register_keras_serializable(package="keras_dropact")
class ReLUVariant:
    """`keras.activations.relu` with fixed arguments: an elementwise callable.

    The function a `keras.layers.ReLU(max_value, negative_slope, threshold)`
    layer applies, as a serializable activation, so that `DropActivation`
    can drop exactly that function (paper eq. 3 and 5 hold for any
    elementwise f) and a model holding it saves and loads.

    Args:
        max_value: the largest output, or None for no bound.
        negative_slope: the slope below the threshold, >= 0.
        threshold: inputs at or below it are damped, >= 0.

    Raises:
        ValueError: for an argument that is not a number >= 0.
    """

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0):
        if max_value is not None:
            max_value = _non_negative("max_value", max_value)
        self.max_value = max_value
        self.negative_slope = _non_negative("negative_slope", negative_slope)
        self.threshold = _non_negative("threshold", threshold)

    def __call__(self, x):
        return keras.activations.relu(
            x,
            negative_slope=self.negative_slope,
            max_value=self.max_value,
            threshold=self.threshold,
        )

    def __repr__(self):
        """The Keras layer computing it, e.g. "ReLU(max_value=3.0)"."""
        arguments = ", ".join(
            f"{key}={value}"
            for key, value in self.get_config().items()
            if value != _RELU_DEFAULTS[key]
        )
        return f"ReLU({arguments})"

    def get_config(self):
        return {
            "max_value": self.max_value,
            "negative_slope": self.negative_slope,
            "threshold": self.threshold,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
