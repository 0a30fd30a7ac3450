"""`TorchSGD` is `torch.optim.SGD` (momentum, Nesterov, weight decay, a
learning-rate drop); `keras.optimizers.SGD` is not at a drop
(keras_dropact/optimizers.py, docs/guides/training.md).

Backend-neutral: `model.train_on_batch` and `keras.ops` only. CI runs it on
TensorFlow, JAX and PyTorch (`.ci/run`).
"""

import numpy as np
import pytest

import keras

from keras_dropact import TorchSGD
from keras_dropact.models import pytorch_l2

STEPS, MILESTONE, LR, GAMMA, MOMENTUM, WEIGHT_DECAY = 30, 15, 0.1, 0.1, 0.9, 5e-3
INPUTS, OUTPUTS, BATCH = 4, 2, 8


def _problem(seed=0):
    """A linear regression: one batch per step, the initial weights."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(STEPS, BATCH, INPUTS)).astype("float32")
    y = (x @ rng.normal(size=(INPUTS, OUTPUTS)) + 0.3 * rng.normal(size=(STEPS, BATCH, OUTPUTS)))
    kernel = rng.normal(size=(INPUTS, OUTPUTS)).astype("float32")
    bias = rng.normal(size=(OUTPUTS,)).astype("float32")
    return x, y.astype("float32"), kernel, bias


def _rate(step):
    """MultiStepLR(milestones=[MILESTONE], gamma=GAMMA) at `step`."""
    return LR * GAMMA ** (step >= MILESTONE)


def _torch_weights(nesterov):
    """The weights after each step of `torch.optim.SGD` with `MultiStepLR`."""
    torch = pytest.importorskip("torch", reason="the reference is torch.optim.SGD (the torch extra)")
    x, y, kernel, bias = _problem()
    weights = [torch.tensor(kernel, requires_grad=True), torch.tensor(bias, requires_grad=True)]
    optimizer = torch.optim.SGD(weights, lr=LR, momentum=MOMENTUM, nesterov=nesterov,
                                weight_decay=WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[MILESTONE], gamma=GAMMA)
    trace = []
    for step in range(STEPS):
        optimizer.zero_grad()
        prediction = torch.tensor(x[step]) @ weights[0] + weights[1]
        torch.mean((prediction - torch.tensor(y[step])) ** 2).backward()
        optimizer.step()
        schedule.step()
        trace.append([w.detach().numpy().copy() for w in weights])
    return trace


def _keras_weights(optimizer_class, nesterov, rate=_rate):
    """The weights after each step of `optimizer_class`, the weight decay as
    the project applies it (`pytorch_l2`), the learning rate `rate(step)`."""
    x, y, kernel, bias = _problem()
    regularizer = pytorch_l2(WEIGHT_DECAY)
    model = keras.Sequential([keras.Input((INPUTS,)), keras.layers.Dense(
        OUTPUTS, kernel_regularizer=regularizer, bias_regularizer=regularizer)])
    model.set_weights([kernel, bias])
    model.compile(optimizer=optimizer_class(learning_rate=LR, momentum=MOMENTUM, nesterov=nesterov),
                  loss="mse")
    trace = []
    for step in range(STEPS):
        model.optimizer.learning_rate = rate(step)
        model.train_on_batch(x[step], y[step])
        trace.append(model.get_weights())
    return trace


def _relative_difference(trace, reference):
    """The largest difference of a weight from the reference's, over the
    steps, relative to the reference's largest weight at that step."""
    def flat(weights):
        return np.concatenate([np.ravel(w) for w in weights])

    return max(float(np.max(np.abs(flat(w) - flat(r))) / np.max(np.abs(flat(r))))
               for w, r in zip(trace, reference))


@pytest.mark.parametrize("nesterov", [False, True])
def test_torch_sgd_steps_as_torch_optim_sgd_across_a_learning_rate_drop(nesterov):
    reference = _torch_weights(nesterov)
    # Float32 rounding: 0.8e-7 to 1.6e-7 on TensorFlow, JAX and PyTorch.
    assert _relative_difference(_keras_weights(TorchSGD, nesterov), reference) < 1e-6
    # Keras' SGD is the same before the drop (up to rounding), not after it:
    # its velocity holds the old rate for ~1 / (1 - momentum) steps (0.32
    # with Nesterov, 0.70 without).
    keras_sgd = _keras_weights(keras.optimizers.SGD, nesterov)
    assert _relative_difference(keras_sgd[:MILESTONE], reference[:MILESTONE]) < 1e-6
    assert _relative_difference(keras_sgd, reference) > 0.1


@pytest.mark.parametrize("nesterov", [False, True])
def test_with_a_learning_rate_of_zero_the_weights_stay(nesterov):
    def stop(step):
        return LR if step < MILESTONE else 0.0

    trace = _keras_weights(TorchSGD, nesterov, rate=stop)
    for weights in trace[MILESTONE:]:
        for w, stopped in zip(weights, trace[MILESTONE - 1]):
            np.testing.assert_array_equal(w, stopped)
    # Keras' SGD goes on with the velocity of the last steps.
    moved = _keras_weights(keras.optimizers.SGD, nesterov, rate=stop)
    assert not np.array_equal(moved[-1][0], moved[MILESTONE - 1][0])


def test_torch_sgd_is_keras_sgd_with_its_slots_and_configuration():
    optimizer = TorchSGD(learning_rate=0.05, momentum=0.9, nesterov=True)
    weights = [keras.Variable(np.zeros((3, 2), "float32")), keras.Variable(np.zeros(2, "float32"))]
    optimizer.build(weights)
    reference = keras.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True)
    reference.build(weights)
    assert [(v.name, tuple(v.shape)) for v in optimizer.variables] == [
        (v.name, tuple(v.shape)) for v in reference.variables]
    assert len(optimizer.variables) == 2 + len(weights)  # iteration, learning rate, momentums
    config = keras.saving.serialize_keras_object(optimizer)
    assert config["registered_name"] == "keras_dropact>TorchSGD"
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored) is TorchSGD and restored.get_config() == optimizer.get_config()
