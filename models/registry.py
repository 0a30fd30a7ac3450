"""`build(name, **overrides)` over the presets, and the family registry."""

import inspect

from keras_dropact.layers import DEFAULT_KEEP_PROBABILITY
from keras_dropact.layers import get_act_layer
from keras_dropact.models.densenet import densenet_bc
from keras_dropact.models.mnist1d import mnist1d_cnn
from keras_dropact.models.mnist1d import mnist1d_mlp
from keras_dropact.models.mnist1d import simple_cnn_1d
from keras_dropact.models.preresnet import preresnet
from keras_dropact.models.presets import PRESETS
from keras_dropact.models.resnet import cifar_resnet
from keras_dropact.models.resnet import resnet
from keras_dropact.models.resnext import resnext
from keras_dropact.models.simple import mlp
from keras_dropact.models.simple import simple_cnn
from keras_dropact.models.wrn import wide_resnet

FAMILIES = {
    "resnet": resnet,
    "cifar_resnet": cifar_resnet,
    "preresnet": preresnet,
    "wide_resnet": wide_resnet,
    "densenet_bc": densenet_bc,
    "resnext": resnext,
    "simple_cnn": simple_cnn,
    "mlp": mlp,
    "mnist1d_mlp": mnist1d_mlp,
    "mnist1d_cnn": mnist1d_cnn,
    "simple_cnn_1d": simple_cnn_1d,
}


def names():
    """The preset names, in the order of the model table."""
    return list(PRESETS)


def get_preset(name):
    """The metadata of preset `name` (family, kwargs, params, paper rows)."""
    if name not in PRESETS:
        raise ValueError(
            f"Unknown model {name!r}. Expected one of: {', '.join(PRESETS)}."
        )
    return PRESETS[name]


# The rank of one example each family takes: (H, W, C) images, (length,
# channels) signals for the MNIST-1D networks, or flat (features,) vectors
# for the MLP.
INPUT_RANKS = {family: 3 for family in FAMILIES} | {
    "mlp": 1, "mnist1d_mlp": 2, "mnist1d_cnn": 2, "simple_cnn_1d": 2,
}
_INPUT_KINDS = {
    3: "images (height, width, channels)",
    2: "1-D signals (length, channels)",
    1: "flat vectors (features,)",
}


def check_build(name, input_shape=None, **overrides):
    """Checks that `build(name, input_shape=..., **overrides)` can work, building nothing.

    Raises:
        ValueError: an unknown preset or override (listing the accepted
            ones), or an input shape the family cannot take (listing the
            presets that take it).
    """
    preset = get_preset(name)
    family = preset["family"]
    # The activation is chosen by `activation` and `p`, not by `act_layer`.
    accepted = [a for a in inspect.signature(FAMILIES[family]).parameters if a != "act_layer"]
    unknown = sorted(set(overrides) - set(accepted))
    if unknown:
        raise ValueError(
            f"Unknown argument(s) {', '.join(unknown)} for model {name!r} "
            f"(family {family}). Accepted: {', '.join(accepted)}."
        )
    if input_shape is None:
        return
    rank = INPUT_RANKS[family]
    if len(input_shape) != rank:
        fitting = [n for n, p in PRESETS.items() if INPUT_RANKS[p["family"]] == len(input_shape)]
        fix = (
            f"presets that take them: {', '.join(fitting)}"
            if fitting
            else "no preset takes them; build your own model for them"
        )
        raise ValueError(
            f"Model {name!r} takes {_INPUT_KINDS[rank]}, not inputs of shape "
            f"{tuple(input_shape)}; {fix}."
        )
    poolings = _poolings(family, {**preset["kwargs"], **overrides})
    if rank == 3 and min(input_shape[:2]) < 2**poolings:
        raise ValueError(
            f"Model {name!r} needs images of at least {2**poolings}x{2**poolings} "
            f"pixels (it halves them {poolings} times), not "
            f"{input_shape[0]}x{input_shape[1]}; resize the images or take a "
            "strided ResNet (resnet-20, wrn-16-4, ...)."
        )


def _poolings(family, kwargs):
    """How many 2x2 'valid' poolings the family applies (each needs size >= 2)."""
    if family == "simple_cnn":
        widths = kwargs.get("widths", inspect.signature(simple_cnn).parameters["widths"].default)
        return len(widths)
    if family == "densenet_bc":
        return 2  # The two transitions between the three dense blocks.
    return 0  # Strided convolutions with "same" padding take any size.


def build(
    name,
    num_classes=None,
    input_shape=None,
    activation="dropact",
    p=DEFAULT_KEEP_PROBABILITY,
    **overrides,
):
    """Builds preset `name` as a functional `keras.Model` that outputs logits.

    Args:
        name: a preset name, see `names()` (e.g. `"resnet-110"`).
        num_classes: size of the output layer. Defaults to the preset's
            (10 for the classifiers; 1 for `mlp`, whose output is the
            regression target and whose `num_classes` is its output size).
        input_shape: defaults to the preset's: `(32, 32, 3)`, or `(1,)` for
            `mlp`; e.g. `(28, 28, 1)` for EMNIST.
        activation: the nonlinearity put at every activation site (stem,
            inside blocks, after each residual add, transitions, final
            pre-pooling): `"dropact"`, `"relu"`, `"rrelu"`, `"leaky_relu"`
            or a callable returning a new layer, which gets each site's
            `seed` and `name` if it takes them, e.g.
            `functools.partial(DropActivation, p=0.9, activation="gelu")`
            (see `keras_dropact.layers.get_act_layer`).
        p: Drop-Activation's probability of keeping the nonlinearity
            (`"dropact"`, `"leaky_relu"`).
        **overrides: any other argument of the preset's family builder,
            replacing the preset's value, e.g. `dropout=0.0` for a WRN,
            `depth=...`, `name=...`, and for every family:
            - `seed`: an integer making every random layer reproducible: the
              activation or dropout site i (in construction order) gets
              `seed + i`, so the Drop-Activation, RReLU and dropout layers
              all draw different masks.
            - `weight_decay`: PyTorch SGD's `weight_decay`, applied as an L2
              regularizer `weight_decay / 2 * ||w||^2` on every trainable
              weight (conv kernels, dense kernels and biases, BN gammas and
              betas) so that its gradient is PyTorch's `weight_decay * w`.
              The terms are in `model.losses`, which `model.fit` adds to the
              loss; they are saved with the model. Use it with an optimizer
              without its own `weight_decay`.

    Raises:
        ValueError: for an unknown preset or override, or invalid values.
    """
    check_build(name, input_shape, **overrides)
    preset = get_preset(name)
    builder = FAMILIES[preset["family"]]
    kwargs = {"name": name, **preset["kwargs"], **overrides}
    kwargs["act_layer"] = get_act_layer(activation, p)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if input_shape is not None:
        kwargs["input_shape"] = tuple(input_shape)
    return builder(**kwargs)
