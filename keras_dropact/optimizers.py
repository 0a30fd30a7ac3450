"""SGD with momentum as PyTorch computes it: `TorchSGD`.

The paper's recipes are PyTorch's `torch.optim.SGD(momentum=..., nesterov=...)`
with a step learning-rate schedule (`MultiStepLR`). Keras' SGD keeps a
velocity that already holds the learning rate, PyTorch a buffer of
gradients that the learning rate multiplies at each step:

    Keras:    v = mu * v - lr * g;   w = w + v       (Nesterov: w = w + mu * v - lr * g)
    PyTorch:  b = mu * b + g;        w = w - lr * b  (Nesterov: w = w - lr * (g + mu * b))

With a constant learning rate they are the same (v = -lr * b). At a
milestone they are not: PyTorch's steps shrink at once by the drop, while
Keras' velocity goes on for about 1 / (1 - mu) steps at the old rate's scale
(with a learning rate of 0, Keras still moves the weights; PyTorch does not).
docs/guides/training.md says what that does to a run.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_dropact")
class TorchSGD(keras.optimizers.SGD):
    """`keras.optimizers.SGD` with PyTorch's momentum buffer (`torch.optim.SGD`,
    no dampening): `b = mu * b + g`, then `w -= lr * b`, or with
    `nesterov=True` `w -= lr * (g + mu * b)`.

    Same arguments, configuration and slot variables as Keras' SGD (one
    "momentum" variable per weight, holding `b` instead of Keras' `-lr * b`),
    so a model's weights files keep their layout; a `.keras` file holding it
    loads once `keras_dropact` is imported. Without momentum both are plain
    `w -= lr * g`. PyTorch's `weight_decay` is a loss term here
    (`models.pytorch_l2`), not an argument.
    """

    def update_step(self, gradient, variable, learning_rate):
        """One step of `variable` along `gradient` (PyTorch's order of operations)."""
        if self.momentum == 0:
            super().update_step(gradient, variable, learning_rate)
            return
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        momentum = ops.cast(self.momentum, variable.dtype)
        buffer = self.momentums[self._get_variable_index(variable)]
        self.assign(buffer, ops.add(ops.multiply(buffer, momentum), gradient))
        step = ops.add(gradient, ops.multiply(buffer, momentum)) if self.nesterov else buffer
        self.assign_sub(variable, ops.multiply(step, learning_rate))


# The SGD class of each convention of the momentum buffer (the module
# docstring): "pytorch" is the paper's; "keras" is what keras-dropact used
# before `TorchSGD`, kept to resume the runs it started exactly.
SGD_OF_CONVENTION = {"pytorch": TorchSGD, "keras": keras.optimizers.SGD}
