"""Resolving the nonlinearity that Drop-Activation randomly drops.

Drop-Activation is defined for an *elementwise* nonlinearity f (paper eq. 1):
dropping f at one element must not change any other element. Activations that
mix elements (softmax, log_softmax, glu, sparsemax) are rejected here, both by
name and by probing a callable, so that a mistake fails when the layer is
created instead of training a different model silently.
"""

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


def resolve_activation(activation):
    """Returns `(callable, serialized_name)` for an elementwise activation.

    Args:
        activation: the name of a built-in elementwise Keras activation, or a
            callable (register it with
            `keras.saving.register_keras_serializable` so that models using it
            can be saved and loaded).

    Raises:
        ValueError: for unknown names, non-elementwise activations, or
            anything that is neither a string nor a callable.
    """
    if isinstance(activation, str):
        if activation not in ELEMENTWISE_ACTIVATIONS:
            raise ValueError(
                "Invalid value received for argument `activation`: "
                f"{activation!r} is not an elementwise Keras activation. "
                f"Expected one of {', '.join(ELEMENTWISE_ACTIVATIONS)}, "
                "or an elementwise callable."
            )
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
