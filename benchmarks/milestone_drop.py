"""The training loss after a learning-rate drop, with PyTorch's and Keras' SGD momentum.

Not a speed benchmark: the measurement behind "at a milestone" in
docs/guides/training.md. ResNet-20 (ReLU) on the first 10,000 Fashion-MNIST
training images with the `fashion-mnist` recipe (SGD 0.1, Nesterov momentum
0.9, PyTorch-style weight decay 5e-4, batch 128, no augmentation) trains
`--epochs` epochs at 0.1 with `TorchSGD`. Then, from the same weights and
momentum each time, it takes `--steps` steps on the next batches at the rates
0.1, 0.01 (the milestone) and 0, with `TorchSGD` and with
`keras.optimizers.SGD`, whose velocity is set to -0.1 x the buffer (what it
holds after the same epochs at a constant rate). Prints each step's loss.

    python benchmarks/milestone_drop.py [--epochs 4] [--steps 12]
"""

import argparse

import keras
import numpy as np

from keras_dropact import TorchSGD
from keras_dropact import models
from keras_dropact import pipelines
from keras_dropact.training.recipes import RECIPES
from keras_dropact.training.run import compile_model

RATES = (0.1, 0.01, 0.0)


def _trained(epochs):
    """The model after `epochs` epochs at the recipe's rate, and the data."""
    keras.utils.set_random_seed(0)
    recipe = RECIPES["fashion-mnist"]
    model = models.build("resnet-20", num_classes=10, activation="relu", input_shape=(28, 28, 1),
                         weight_decay=recipe.weight_decay, seed=0)
    data = pipelines.load("fashion-mnist", "train", recipe.batch_size, take=10000, seed=0,
                          augment="none")
    compile_model(model, recipe, steps_per_epoch=-(-10000 // recipe.batch_size))
    model.fit(data, epochs=epochs, verbose=2)
    return model, data, recipe


def _losses(model, optimizer, weights, buffers, batches, rate):
    """The losses of `batches`, one step each at `rate`, from `weights` and
    PyTorch's momentum `buffers` (scaled to Keras' velocity for Keras' SGD)."""
    model.compile(optimizer=optimizer, loss=model.loss, metrics=[])
    optimizer.build(model.trainable_variables)
    for variable, value in zip(model.weights, weights):
        variable.assign(value)
    scale = 1.0 if isinstance(optimizer, TorchSGD) else -0.1
    for momentum, buffer in zip(optimizer.momentums, buffers):
        momentum.assign(scale * buffer)
    optimizer.learning_rate = rate
    return [model.train_on_batch(x, y, return_dict=True)["loss"] for x, y in batches]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args(argv)
    model, data, recipe = _trained(args.epochs)
    batches = [batch for _, batch in zip(range(args.steps), data)]
    weights = [np.asarray(w) for w in model.weights]
    buffers = [np.asarray(m) for m in model.optimizer.momentums]
    for name, optimizer_class in (("TorchSGD", TorchSGD), ("keras SGD", keras.optimizers.SGD)):
        for rate in RATES:
            optimizer = optimizer_class(learning_rate=rate, momentum=recipe.momentum,
                                        nesterov=recipe.nesterov)
            losses = _losses(model, optimizer, weights, buffers, batches, rate)
            print(f"{name:9s} lr {rate:<4}: " + " ".join(f"{loss:.3f}" for loss in losses),
                  flush=True)


if __name__ == "__main__":
    main()
