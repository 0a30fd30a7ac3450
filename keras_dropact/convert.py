"""Rewriting an existing Keras model to use Drop-Activation.

`convert` copies a functional or Sequential model, replacing each nonlinearity
of the chosen kind by a `DropActivation` layer and keeping every weight:

- `keras.layers.ReLU()` (plain: no max value, slope or threshold) and
  `keras.layers.Activation("relu")` become `DropActivation(p)` (same name);
- a layer with a fused `activation="relu"` (Dense, EinsumDense, the
  convolutions) becomes the same layer with `activation=None`, followed by a
  `DropActivation` named `<layer name>_dropact`.

With `p=1` the converted model computes exactly what the original does; with
`p < 1` its inference is the original with each ReLU replaced by
LeakyReLU(1 - p) (paper eq. 5).
"""

import keras

# Keras exports no public class for functional models; `keras.Model(inputs,
# outputs)` instances are of this one.
from keras.src.models.functional import Functional

from keras_dropact.layers import DEFAULT_KEEP_PROBABILITY
from keras_dropact.layers import DropActivation
from keras_dropact.layers import SiteSeeds

# Layers computing activation(linear map(inputs)), whose activation can be
# split off. Recurrent layers also take an `activation`, but apply it inside
# their recurrence: they are left alone.
FUSED_ACTIVATION_LAYERS = (
    keras.layers.Dense,
    keras.layers.EinsumDense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
    keras.layers.DepthwiseConv1D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv1D,
    keras.layers.SeparableConv2D,
)


def convert(model, p=DEFAULT_KEEP_PROBABILITY, activation="relu", seed=None):
    """Returns a copy of `model` whose `activation`s are Drop-Activations.

    Args:
        model: a functional or Sequential `keras.Model` (nested functional or
            Sequential models are converted too), e.g.
            `keras.applications.ResNet50(weights=None)`.
        p: probability of keeping the nonlinearity, in (0, 1].
        activation: the name of the elementwise activation to convert
            (`"relu"`; `"gelu"`, `"silu"`, ... when asked), or a list of
            names. `Activation(name)` layers and fused `activation=name`
            arguments are converted for any name; `ReLU` layers for "relu".
        seed: integer seed; the i-th DropActivation created gets `seed + i`.
            None for unseeded layers.

    Returns:
        A new model of the same kind, with the original's weights copied
        (the original is left untouched and shares no variable with it),
        compiled from the original's compile config if that was compiled
        (a fresh optimizer, as `keras.models.clone_model` does).

    Raises:
        ValueError: if `model` is a subclassed model, if it contains no
            such activation, or for an invalid `p` or `activation`.
    """
    names = (activation,) if isinstance(activation, str) else tuple(activation)
    state = {"names": names, "p": p, "seeds": SiteSeeds(seed)}
    converted = _convert(model, state)
    if state["seeds"].count == 0:
        raise ValueError(
            f"`convert` found no activation {' or '.join(map(repr, names))} "
            f"in model {model.name!r} (looked at ReLU and Activation layers "
            "and the `activation` of Dense and convolution layers)."
        )
    return converted


def _convert(model, state):
    if isinstance(model, keras.Sequential):
        return _convert_sequential(model, state)
    if not isinstance(model, Functional):
        raise ValueError(
            "`convert` rewrites functional and Sequential models; "
            f"{model.__class__.__name__} {model.name!r} is a subclassed model. "
            "Use `keras_dropact.DropActivation` in its code instead."
        )
    pairs = []
    followers = {}

    def clone_function(layer):
        new, follower = _clone(layer, state, pairs)
        if follower is not None:
            followers[id(new)] = follower
        return new

    def call_function(layer, *args, **kwargs):
        outputs = layer(*args, **kwargs)
        follower = followers.get(id(layer))
        return outputs if follower is None else follower(outputs)

    converted = keras.models.clone_model(
        model, clone_function=clone_function, call_function=call_function
    )
    _copy_weights(pairs)
    return converted


def _convert_sequential(model, state):
    pairs = []
    layers = [keras.Input(batch_shape=model.input_shape)] if model.built else []
    for layer in model.layers:
        new, follower = _clone(layer, state, pairs)
        layers += [new] if follower is None else [new, follower]
    converted = keras.Sequential(layers, name=model.name)
    _copy_weights(pairs)
    if model.compiled:
        converted.compile_from_config(model.get_compile_config())
    return converted


def _clone(layer, state, pairs):
    """Returns (replacement, DropActivation to apply after it or None)."""
    if isinstance(layer, keras.Model):
        return _convert(layer, state), None
    name = _activation_name(layer)
    if name in state["names"]:
        return _drop_activation(
            state, name, layer.name, layer.dtype_policy
        ), None
    config = layer.get_config()
    fused = isinstance(layer, FUSED_ACTIVATION_LAYERS) and (
        keras.activations.serialize(layer.activation) in state["names"]
    )
    follower = None
    if fused:
        follower = _drop_activation(
            state,
            keras.activations.serialize(layer.activation),
            f"{layer.name}_dropact",
            layer.dtype_policy,
        )
        config["activation"] = None
    new = layer.__class__.from_config(config)
    pairs.append((layer, new))
    return new, follower


def _activation_name(layer):
    """The activation a standalone activation layer applies, else None."""
    if isinstance(layer, keras.layers.ReLU):
        plain = (
            layer.max_value is None
            and layer.negative_slope == 0
            and layer.threshold == 0
        )
        return "relu" if plain else None
    if isinstance(layer, keras.layers.Activation):
        return keras.activations.serialize(layer.activation)
    return None


def _drop_activation(state, activation, name, dtype):
    return DropActivation(
        p=state["p"],
        activation=activation,
        seed=state["seeds"].next(),
        name=name,
        dtype=dtype,
    )


def _copy_weights(pairs):
    for old, new in pairs:
        if isinstance(old, keras.layers.Layer) and old.weights:
            new.set_weights(old.get_weights())
