from keras_dropact.layers.drop_activation import DropActivation
from keras_dropact.layers.randomized_relu import RandomizedReLU

__all__ = ["DropActivation", "RandomizedReLU"]
