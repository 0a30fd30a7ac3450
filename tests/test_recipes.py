"""Recipes as data and the learning-rate schedule they drive."""

import keras
import numpy as np
import pytest

from keras_dropact.training import recipes
from keras_dropact.training.recipes import Recipe
from keras_dropact.training.schedule import LearningRateLog
from keras_dropact.training.schedule import recipe_schedule


def test_paper_schedules():
    resnet110 = recipes.get("resnet-110")
    assert resnet110.learning_rate(0, 0) == 0.01  # warm-up (He et al.)
    assert resnet110.learning_rate(0, 400) == 0.1
    assert resnet110.learning_rate(80, 10**5) == pytest.approx(0.1)
    assert resnet110.learning_rate(81, 10**5) == pytest.approx(0.01)
    assert resnet110.learning_rate(122, 10**5) == pytest.approx(0.001)
    wrn = recipes.get("wrn-28-10")
    assert [wrn.learning_rate(e, 10**5) for e in (59, 60, 120, 160)] == pytest.approx([0.1, 0.02, 0.004, 0.0008])
    assert wrn.nesterov and wrn.weight_decay == 5e-4 and wrn.dropout == 0.3
    assert recipes.get("densenet-bc-190-40").batch_size == 32


def test_default_recipe_follows_model_and_dataset():
    assert recipes.default_for("wrn-16-8", "svhn") == "wrn-16-8-svhn"
    assert recipes.default_for("resnext-29-8x64d", "svhn") == "resnext-29-8x64d-svhn"
    assert recipes.default_for("resnext-29-8x64d", "cifar10") == "resnext-29-8x64d"
    assert recipes.default_for("resnet-18", "cifar100") == "resnet-18-cutout"
    assert recipes.default_for("resnet-20", "digits") == "quick"


def test_unknown_recipe_lists_the_choices():
    with pytest.raises(ValueError, match="Unknown recipe 'fast'.*quick"):
        recipes.get("fast")


# The rates the per-batch callback of keras-dropact before issue 25
# (`RecipeLearningRate`, main at c459b27) set, recorded by driving it as
# `model.fit` does (on_epoch_begin, then on_train_batch_begin per step, the
# optimizer's step counter advancing after each) with a real SGD: the
# float32 rate of every 97th step, of the last step and of resnet-110's
# boundary steps, as runs (first sampled step, last sampled step, rate),
# and the `lr` it logged at each epoch's end as runs (first epoch, last
# epoch, rate). Steps per epoch: CIFAR's 50,000 / 128 (391), digits'
# 1,437 / 64 (23), MNIST-1D's 4,000 / 100 (40).
CALLBACK_RATES = {
    "resnet-110": (391, 64124, [(0, 399, 0.009999999776482582), (400, 31670, 0.10000000149011612),
                                (31671, 47701, 0.009999999776482582), (47702, 64123, 0.0010000000474974513)],
                   [(0, 0, 0.009999999776482582), (1, 80, 0.10000000149011612),
                    (81, 121, 0.009999999776482582), (122, 163, 0.0010000000474974513)]),
    "wrn-28-10": (391, 78200, [(0, 23377, 0.10000000149011612), (23474, 46851, 0.019999999552965164),
                               (46948, 62468, 0.004000000189989805), (62565, 78199, 0.0007999999797903001)],
                  [(0, 59, 0.10000000149011612), (60, 119, 0.019999999552965164),
                   (120, 159, 0.004000000189989805), (160, 199, 0.0007999999797903001)]),
    "quick": (23, 345, [(0, 194, 0.05000000074505806), (291, 344, 0.004999999888241291)],
              [(0, 9, 0.05000000074505806), (10, 14, 0.004999999888241291)]),
    "mnist1d": (40, 6000, [(0, 5999, 0.009999999776482582)], [(0, 149, 0.009999999776482582)]),
}
RESNET_110_BOUNDARIES = {0: 0.01, 399: 0.01, 400: 0.1, 31670: 0.1, 31671: 0.01, 47701: 0.01, 47702: 0.001}


def _rates(schedule, steps):
    rates = keras.ops.convert_to_numpy(schedule(np.array(steps, "int64")))
    assert rates.dtype == np.float32  # As the callback's variable held them.
    return rates


def _expected(runs, steps):
    found = [[rate for first, last, rate in runs if first <= step <= last] for step in steps]
    assert all(len(rates) == 1 for rates in found)  # Every step is in one run.
    return np.array([rates[0] for rates in found], "float32")


@pytest.mark.parametrize("name", sorted(CALLBACK_RATES))
def test_the_schedule_gives_the_callbacks_rates_step_for_step(name):
    steps_per_epoch, total, runs, epoch_runs = CALLBACK_RATES[name]
    recipe = recipes.get(name)
    assert recipe.epochs * steps_per_epoch == total
    schedule = recipe_schedule(recipe, steps_per_epoch)
    boundaries = list(RESNET_110_BOUNDARIES) if name == "resnet-110" else []
    steps = sorted({*range(0, total, 97), total - 1, *boundaries})
    np.testing.assert_array_equal(_rates(schedule, steps), _expected(runs, steps))
    # The `lr` logged at each epoch's end: the rate of its last step.
    last_steps = [(epoch + 1) * steps_per_epoch - 1 for epoch in range(recipe.epochs)]
    np.testing.assert_array_equal(_rates(schedule, last_steps), _expected(epoch_runs, range(recipe.epochs)))
    if boundaries:
        np.testing.assert_array_equal(_rates(schedule, boundaries),
                                      np.array(list(RESNET_110_BOUNDARIES.values()), "float32"))


class _RecordRate(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_begin(self, batch, logs=None):
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


@pytest.mark.parametrize("steps_per_epoch", [4, 1])
def test_fit_applies_warmup_then_milestones_per_step(steps_per_epoch):
    recipe = Recipe(epochs=2 if steps_per_epoch == 4 else 5, lr=0.1, milestones=(1,), gamma=0.1,
                    warmup_steps=2, warmup_lr=0.01)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(recipe_schedule(recipe, steps_per_epoch)), loss="mse")
    x, y = np.ones((16, 3), "float32"), np.ones((16, 1), "float32")
    record = _RecordRate()
    history = model.fit(x, y, batch_size=4, epochs=recipe.epochs, steps_per_epoch=steps_per_epoch,
                        callbacks=[LearningRateLog(recipe_schedule(recipe, steps_per_epoch)), record],
                        verbose=0)
    if steps_per_epoch == 4:  # The callback's rates (its own test before issue 25).
        np.testing.assert_allclose(record.rates, [0.01, 0.01, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01], rtol=1e-6)
        np.testing.assert_allclose(history.history["lr"], [0.1, 0.01], rtol=1e-6)
    else:  # The milestone (epoch 1) falls in the warm-up (steps 0, 1): warm-up first.
        np.testing.assert_allclose(record.rates, [0.01, 0.01, 0.01, 0.01, 0.01], rtol=1e-6)
        np.testing.assert_allclose(history.history["lr"], [0.01] * 5, rtol=1e-6)
    assert len(model.optimizer.variables) == 1  # The step counter; no learning-rate variable.


def test_mnist1d_recipe_is_adam_and_optimizers_are_checked():
    from keras_dropact.training.run import make_optimizer

    r = recipes.get("mnist1d")
    # MNIST-1D's benchmark: Adam 1e-2, batch 100, no weight decay, 6000 steps of 4000 signals.
    assert (r.optimizer, r.lr, r.batch_size, r.weight_decay, r.milestones) == ("adam", 1e-2, 100, 0.0, ())
    assert r.epochs * 4000 // r.batch_size == 6000
    adam = make_optimizer(r, 40)
    assert isinstance(adam, keras.optimizers.Adam)
    assert (adam.beta_1, adam.beta_2, adam.epsilon) == (0.9, 0.999, 1e-8)  # PyTorch's defaults
    sgd = make_optimizer(recipes.get("quick"), 23)
    assert isinstance(sgd, keras.optimizers.SGD) and sgd.nesterov and sgd.momentum == 0.9
    with pytest.raises(ValueError, match="Unknown optimizer 'adamw'. Valid optimizers: sgd, adam"):
        Recipe(epochs=1, optimizer="adamw")
