"""Every Keras object a keras-dropact model can hold, and the activation registry.

All layers are registered under the `keras_dropact>` package, so a `.keras`
file holding them loads with `keras.saving.load_model` after
`import keras_dropact`.
"""

from keras_dropact.layers.act_layer import ACTIVATIONS
from keras_dropact.layers.act_layer import SiteSeeds
from keras_dropact.layers.act_layer import activation_layer
from keras_dropact.layers.act_layer import get_act_layer
from keras_dropact.layers.drop_activation import DEFAULT_KEEP_PROBABILITY
from keras_dropact.layers.drop_activation import DropActivation
from keras_dropact.layers.drop_activation import check_keep_probability
from keras_dropact.layers.activations import ReLUVariant
from keras_dropact.layers.randomized_relu import RandomizedReLU
from keras_dropact.layers.shortcut import ZeroPadShortcut

__all__ = [
    "ACTIVATIONS",
    "DEFAULT_KEEP_PROBABILITY",
    "DropActivation",
    "RandomizedReLU",
    "ReLUVariant",
    "SiteSeeds",
    "ZeroPadShortcut",
    "activation_layer",
    "check_keep_probability",
    "get_act_layer",
]
