"""The Drop-Activation paper's benchmark networks, exact to their references.

    from keras_dropact import models
    model = models.build("resnet-110", num_classes=10, activation="dropact")
    models.names()  # the presets

Families (parameterised builders) live one per module; presets (named
configurations with their exact parameter counts) in `keras_dropact.models.presets`.
The layers they use, and the activation registry (`act_layer`), live in
`keras_dropact.layers`. A trained model that `dropact publish` wrote loads
with `from_preset(path)` (`published.py`).
"""

from keras_dropact.models.common import pytorch_l2
from keras_dropact.models.densenet import densenet_bc
from keras_dropact.models.mnist1d import mnist1d_cnn
from keras_dropact.models.mnist1d import mnist1d_mlp
from keras_dropact.models.mnist1d import simple_cnn_1d
from keras_dropact.models.preresnet import preresnet
from keras_dropact.models.presets import PRESETS
from keras_dropact.models.published import from_preset
from keras_dropact.models.published import preset_metadata
from keras_dropact.models.registry import FAMILIES
from keras_dropact.models.registry import build
from keras_dropact.models.registry import check_build
from keras_dropact.models.registry import get_preset
from keras_dropact.models.registry import names
from keras_dropact.models.resnet import cifar_resnet
from keras_dropact.models.resnet import resnet
from keras_dropact.models.resnext import resnext
from keras_dropact.models.simple import mlp
from keras_dropact.models.simple import simple_cnn
from keras_dropact.models.wrn import wide_resnet

__all__ = [
    "FAMILIES",
    "PRESETS",
    "build",
    "check_build",
    "cifar_resnet",
    "densenet_bc",
    "from_preset",
    "get_preset",
    "mlp",
    "mnist1d_cnn",
    "mnist1d_mlp",
    "names",
    "preresnet",
    "preset_metadata",
    "pytorch_l2",
    "resnet",
    "resnext",
    "simple_cnn",
    "simple_cnn_1d",
    "wide_resnet",
]
