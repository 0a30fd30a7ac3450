"""Rewriting an existing Keras model to use Drop-Activation.

`convert` copies a functional or Sequential model, replacing each nonlinearity
of the chosen kind by a `DropActivation` of exactly that function (paper eq. 3
in training and eq. 5 in inference hold for any elementwise f) and keeping
every weight:

- an activation layer becomes `DropActivation(p, f)` with the same name:
  `keras.layers.Activation(f)`, and `keras.layers.ReLU`, whose f is "relu"
  when plain, "relu6" with `max_value=6` only, and otherwise a `ReLUVariant`
  converted only with `relu_variants=True`;
- a layer with a fused `activation=f` (Dense, EinsumDense, the convolutions)
  becomes the same layer with `activation=None`, followed by a
  `DropActivation` named `<layer name>_dropact`.

Names are resolved as Keras resolves them: `activation="swish"` finds the
layers built with "swish" or "silu", or with `keras.activations.silu`.
With `p=1` the converted model computes exactly what the original does.
"""

import collections
import sys
import types

import keras

# Keras exports no public class for functional models; `keras.Model(inputs,
# outputs)` instances are of this one.
from keras.src.models.functional import Functional

from keras_dropact.layers import DEFAULT_KEEP_PROBABILITY
from keras_dropact.layers import DropActivation
from keras_dropact.layers import ReLUVariant
from keras_dropact.layers import SiteSeeds
from keras_dropact.layers import check_keep_probability
from keras_dropact.layers.activations import ELEMENTWISE_ACTIVATIONS
from keras_dropact.layers.activations import keras_activation_name

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

# One nonlinearity `convert` can replace: `kind` names it (a Keras activation
# name, or "ReLU(max_value=3.0)" for a ReLU variant), `function` is what the
# DropActivation applies, `variant` is True for a ReLU variant.
Site = collections.namedtuple("Site", ["kind", "function", "variant"])


def convert(
    model,
    p=DEFAULT_KEEP_PROBABILITY,
    activation="relu",
    seed=None,
    relu_variants=False,
):
    """Returns a copy of `model` whose `activation`s are Drop-Activations.

    Args:
        model: a functional or Sequential `keras.Model` (nested functional or
            Sequential models are converted too), e.g.
            `keras.applications.ResNet50(weights=None)`, or a keras-hub task
            (rebuilt as its own class around its converted backbone; a
            keras-hub backbone comes back as a plain functional model).
        p: probability of keeping the nonlinearity, in (0, 1].
        activation: the name of the elementwise Keras activation to convert
            ("relu"; "relu6", "gelu", "swish", ... when asked), or a list of
            names, resolved as `keras.activations.get` does ("swish" and
            "silu" are one function). "relu" is `max(x, 0)` only.
        seed: integer seed; the i-th DropActivation created gets `seed + i`.
            None for unseeded layers.
        relu_variants: if True, "relu" (which must then be among the names)
            also stands for every `ReLU` layer with a `max_value`,
            `negative_slope` or `threshold` and for "relu6"; each becomes a
            DropActivation of its own exact function.

    Returns:
        A new model of the same kind, with the original's weights copied
        (the original is left untouched and shares no variable with it),
        compiled from the original's compile config if that was compiled
        (a fresh optimizer, as `keras.models.clone_model` does).

    Raises:
        ValueError: in one line, if `model` is a subclassed model or contains
            no such activation (naming those it has), or for an invalid `p`,
            `activation` or `relu_variants`.
    """
    state = {
        "names": _requested_names(activation, relu_variants),
        "relu_variants": relu_variants,
        "p": check_keep_probability(p),
        "seeds": SiteSeeds(seed),
    }
    _check_convertible(model)
    if not any(_matches(site, state) for site in _sites(model)):
        raise ValueError(_nothing_found(model, state))
    return _convert(model, state)


def activation_sites(model):
    """Counts the nonlinearities `convert` can replace in `model`, by kind.

    Kinds are Keras activation names ("relu", "relu6", "silu", ...) and, for
    `ReLU` layers with other arguments, their function ("ReLU(max_value=3.0)",
    converted with `relu_variants=True`). A layer shared by several calls
    counts once. The number of sites a `convert` call replaced is
    `sum(activation_sites(model).values()) -
    sum(activation_sites(converted).values())`.
    """
    counts = collections.Counter(site.kind for site in _sites(model))
    return dict(sorted(counts.items()))


def _requested_names(activation, relu_variants):
    """The Keras names of the activations to convert; checks the arguments."""
    items = [activation] if isinstance(activation, str) else activation
    if not isinstance(items, (list, tuple)) or not items:
        raise ValueError(
            "Invalid value received for argument `activation`: expected the "
            "name of an elementwise Keras activation or a non-empty list of "
            f"names. Received: activation={activation!r}"
        )
    names = {keras_activation_name(item) for item in items}
    if not isinstance(relu_variants, bool):
        raise ValueError(
            "Invalid value received for argument `relu_variants`: expected "
            f"True or False. Received: relu_variants={relu_variants!r}"
        )
    if relu_variants and "relu" not in names:
        raise ValueError(
            "`relu_variants=True` extends the activation 'relu', which is not "
            f"among activation={activation!r}: add 'relu' or leave it False."
        )
    return names | {"relu6"} if relu_variants else names


def _check_convertible(model):
    if not isinstance(model, (keras.Sequential, Functional)):
        raise ValueError(
            "`convert` rewrites functional and Sequential models; "
            f"{model.__class__.__name__} {model.name!r} is a subclassed model. "
            "Use `keras_dropact.DropActivation` in its code instead."
        )


def _matches(site, state):
    return site.kind in state["names"] or (
        site.variant and state["relu_variants"]
    )


def _nothing_found(model, state):
    """The one-line message for a model without the requested activation."""
    sites = list(_sites(model))
    counts = collections.Counter(site.kind for site in sites)
    found = ", ".join(f"{kind} x{n}" for kind, n in sorted(counts.items()))
    hint = " (ReLU variants: relu_variants=True)" if any(
        site.variant for site in sites
    ) else ""
    return (
        f"`convert` found no activation "
        f"{' or '.join(map(repr, sorted(state['names'])))} in model "
        f"{model.name!r} (looked at ReLU and Activation layers and the "
        "`activation` of Dense and convolution layers); "
        + (f"it has {found}{hint}." if sites else "it has none of any kind.")
    )


def _sites(model):
    """Yields the `Site` of every replaceable nonlinearity, nested included."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _sites(layer)
            continue
        for site in (_layer_site(layer), _fused_site(layer)):
            if site is not None:
                yield site


def _layer_site(layer):
    """The `Site` of an activation layer, else None."""
    if isinstance(layer, keras.layers.ReLU):
        arguments = (layer.max_value, layer.negative_slope, layer.threshold)
        if arguments == (None, 0, 0):
            return Site("relu", "relu", False)
        if arguments == (6, 0, 0):  # Keras computes it with relu6.
            return Site("relu6", "relu6", False)
        variant = ReLUVariant(*arguments)
        return Site(repr(variant), variant, True)
    if isinstance(layer, keras.layers.Activation):
        return _named_site(layer.activation)
    return None


def _fused_site(layer):
    """The `Site` of a layer's fused `activation` argument, else None."""
    if isinstance(layer, FUSED_ACTIVATION_LAYERS):
        return _named_site(layer.activation)
    return None


def _named_site(function):
    """The `Site` of an activation function Keras saves by an elementwise name.

    A function is known by the name Keras would save it under, so a layer
    built with "swish", "silu" or `keras.activations.silu` is a "silu" site;
    lambdas and other callables are no site.
    """
    if not isinstance(function, types.FunctionType):
        return None
    if function.__name__ == "<lambda>":
        return None
    name = keras.activations.serialize(function)
    if name not in ELEMENTWISE_ACTIVATIONS:
        return None
    return Site(name, name, False)


def _convert(model, state):
    if isinstance(model, keras.Sequential):
        return _convert_sequential(model, state)
    if _is_keras_hub_task(model):
        return _convert_keras_hub_task(model, state)
    _check_convertible(model)
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


def _is_keras_hub_task(model):
    """True for a `keras_hub.models.Task` (keras-hub is then imported)."""
    keras_hub = sys.modules.get("keras_hub")
    return keras_hub is not None and isinstance(model, keras_hub.models.Task)


def _convert_keras_hub_task(task, state):
    """The task rebuilt from its config around its converted backbone.

    A cloned task would be a plain functional model without its class and
    preprocessor; rebuilt, it keeps both (so `predict` on raw inputs,
    `.keras` files and `save_to_preset` work as before) and the weights of
    its head. The backbone itself becomes a plain functional model. The
    task's constructor compiles it with the task's defaults (keras-hub tasks
    cannot be compiled from a compile config).
    """
    config = task.get_config()
    config["backbone"] = _convert(task.backbone, state)
    config["preprocessor"] = task.preprocessor
    try:
        converted = task.__class__.from_config(config)
    except (AttributeError, TypeError, ValueError) as error:
        raise ValueError(
            f"`convert` could not rebuild the keras-hub task "
            f"{task.__class__.__name__} {task.name!r} around its converted "
            f"backbone, a plain functional model ({error}); convert "
            "`task.backbone` and build the task on it yourself."
        ) from error
    _copy_weights(
        (layer, converted.get_layer(layer.name))
        for layer in task.layers
        if layer is not task.backbone and layer.weights
    )
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
    site = _layer_site(layer)
    if site is not None and _matches(site, state):
        return _drop_activation(state, site, layer.name, layer), None
    config = layer.get_config()
    site = _fused_site(layer)
    follower = None
    if site is not None and _matches(site, state):
        name = f"{layer.name}_dropact"
        follower = _drop_activation(state, site, name, layer)
        config["activation"] = None
    new = layer.__class__.from_config(config)
    pairs.append((layer, new))
    return new, follower


def _drop_activation(state, site, name, layer):
    return DropActivation(
        p=state["p"],
        activation=site.function,
        seed=state["seeds"].next(),
        name=name,
        dtype=layer.dtype_policy,
    )


def _copy_weights(pairs):
    for old, new in pairs:
        if isinstance(old, keras.layers.Layer) and old.weights:
            new.set_weights(old.get_weights())
