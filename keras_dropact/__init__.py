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
__all__ = ["DropActivation", "RandomizedReLU", "TorchSGD", "convert", "models", "__version__"]


def __getattr__(name):
    """`keras_dropact.models` (the model factory, `from_preset`) imported on
    first use: `keras_dropact.models.from_preset(...)` works after `import
    keras_dropact` alone, and loading a saved model, which imports this
    package, does not build the model factory (tests/test_saved_models.py)."""
    if name == "models":
        import importlib

        return importlib.import_module("keras_dropact.models")
    raise AttributeError(f"module 'keras_dropact' has no attribute {name!r}")
