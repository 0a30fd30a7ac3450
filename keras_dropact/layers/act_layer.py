"""The one registry of nonlinearities for a network's activation sites.

Model families take an `act_layer` (as timm's do): a factory called once per
activation site, `act_layer(seed=..., name=...)`, returning a new layer. The
named choices are

- `"dropact"`: `DropActivation(p)` (paper eq. 3 in training, eq. 5 in
  inference);
- `"relu"`: `keras.layers.ReLU()`, the baseline;
- `"rrelu"`: `RandomizedReLU()`, slopes U(1/8, 1/3), the paper's comparison;
- `"leaky_relu"`: `LeakyReLU(1 - p)`, Drop-Activation's inference form.

Any callable returning a new layer is a factory too; it gets `seed` and
`name` when its signature takes them, so
`functools.partial(DropActivation, p=0.9, activation="gelu")` builds a
seeded GELU Drop-Activation network. `SiteSeeds` numbers the random layers
of one network so that site i gets `seed + i`; the model factory and
`convert` both use it.
"""

import functools
import inspect

import keras

from keras_dropact.layers.drop_activation import DEFAULT_KEEP_PROBABILITY
from keras_dropact.layers.drop_activation import DropActivation
from keras_dropact.layers.drop_activation import check_keep_probability
from keras_dropact.layers.randomized_relu import RandomizedReLU

ACTIVATIONS = ("dropact", "relu", "rrelu", "leaky_relu")


def _leaky_relu(p, seed=None, name=None):
    del seed  # Deterministic: the seed of its site goes unused.
    return keras.layers.LeakyReLU(negative_slope=1.0 - p, name=name)


def _relu(seed=None, name=None):
    del seed
    return keras.layers.ReLU(name=name)


def get_act_layer(activation="dropact", p=DEFAULT_KEEP_PROBABILITY):
    """Returns the factory `act_layer(seed=None, name=None) -> new layer`.

    Args:
        activation: a name of `ACTIVATIONS`, or a callable returning a new
            `keras.layers.Layer` (a layer class, a `functools.partial`, a
            function); it is passed `seed` and `name` if it takes them.
        p: Drop-Activation's probability of keeping the nonlinearity, used
            by `"dropact"` and `"leaky_relu"` (ignored for callables).

    Raises:
        ValueError: for an unknown name or `p` outside (0, 1].
    """
    if callable(activation) and not isinstance(activation, str):
        return functools.partial(_call_factory, activation)
    if activation not in ACTIVATIONS:
        raise ValueError(
            "Invalid value received for argument `activation`: "
            f"{activation!r}. Expected one of "
            f"{', '.join(map(repr, ACTIVATIONS))} or a callable returning a "
            "layer."
        )
    if activation == "dropact":
        return functools.partial(DropActivation, check_keep_probability(p))
    if activation == "leaky_relu":
        return functools.partial(_leaky_relu, check_keep_probability(p))
    if activation == "rrelu":
        return RandomizedReLU
    return _relu


def activation_layer(
    activation="dropact", p=DEFAULT_KEEP_PROBABILITY, seed=None, name=None
):
    """One new nonlinearity layer: `get_act_layer(activation, p)(seed, name)`."""
    return get_act_layer(activation, p)(seed=seed, name=name)


def _call_factory(factory, seed=None, name=None):
    """Calls a user's factory with the `seed`/`name` it accepts; checks it."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # Some builtins have no signature.
        parameters = ()
    takes = {p.name for p in parameters if p.kind is not p.VAR_POSITIONAL}
    any_keyword = any(p.kind is p.VAR_KEYWORD for p in parameters)
    kwargs = {}
    if "seed" in takes:
        kwargs["seed"] = seed
    if name is not None and ("name" in takes or any_keyword):
        kwargs["name"] = name
    try:
        layer = factory(**kwargs)
    except TypeError as error:
        raise ValueError(
            "Invalid value received for argument `activation`: a callable "
            "must return a new layer, called with no argument or with "
            "`seed`/`name` (for a function f, pass "
            f"`lambda: keras.layers.Activation(f)`). Calling {factory!r} "
            f"failed: {error}"
        ) from error
    if not isinstance(layer, keras.layers.Layer):
        raise ValueError(
            "Invalid value received for argument `activation`: a callable "
            f"must return a new `keras.layers.Layer`, but it returned {layer!r}."
        )
    return layer


class SiteSeeds:
    """Distinct, reproducible seeds for the random layers of one network.

    Site i (counted in construction order over activation and dropout
    sites) gets `seed + i`, so no two layers draw the same masks; with
    `seed=None` every layer is unseeded.
    """

    def __init__(self, seed=None):
        self.seed = seed
        self.count = 0

    def next(self):
        site = self.count
        self.count += 1
        return None if self.seed is None else self.seed + site
