"""The Drop-Activation paper's benchmark networks, exact to their references.

    model = models.build("resnet-110", num_classes=10, activation="dropact")
    models.names()  # the presets

Families (parameterised builders) live one per module; presets (named
configurations with their exact parameter counts) in `models.presets`.
"""

from models.common import ACTIVATIONS
from models.common import ZeroPadShortcut
from models.common import activation_layer
from models.common import pytorch_l2
from models.densenet import densenet_bc
from models.preresnet import preresnet
from models.presets import PRESETS
from models.registry import FAMILIES
from models.registry import build
from models.registry import get_preset
from models.registry import names
from models.resnet import cifar_resnet
from models.resnet import resnet
from models.resnext import resnext
from models.simple import mlp
from models.simple import simple_cnn
from models.wrn import wide_resnet

__all__ = [
    "ACTIVATIONS",
    "FAMILIES",
    "PRESETS",
    "ZeroPadShortcut",
    "activation_layer",
    "build",
    "cifar_resnet",
    "densenet_bc",
    "get_preset",
    "mlp",
    "names",
    "preresnet",
    "pytorch_l2",
    "resnet",
    "resnext",
    "simple_cnn",
    "wide_resnet",
]
