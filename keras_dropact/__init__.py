"""keras-dropact: Drop-Activation (arXiv 1811.05850) for Keras 3."""

__version__ = "0.1.0"

from keras_dropact import interrupts

# The `dropact` command must not lose a Ctrl-C while Keras loads (seconds):
# see keras_dropact/interrupts.py. Other programs keep their handlers.
interrupts.hold_for_command()

from keras_dropact.layers import DropActivation
from keras_dropact.layers import RandomizedReLU
from keras_dropact.convert import convert
from keras_dropact.optimizers import TorchSGD
# `keras_dropact.models.from_preset(...)` after `import keras_dropact` alone.
from keras_dropact import models

__all__ = ["DropActivation", "RandomizedReLU", "TorchSGD", "convert", "models", "__version__"]
