"""Recipes as data and the learning-rate schedule they drive."""

import keras
import numpy as np
import pytest

from keras_dropact.training import recipes
from keras_dropact.training.recipes import Recipe
from keras_dropact.training.schedule import RecipeLearningRate


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


class _RecordRate(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_begin(self, batch, logs=None):
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


def test_callback_applies_warmup_then_milestones_per_step():
    recipe = Recipe(epochs=2, lr=0.1, milestones=(1,), gamma=0.1, warmup_steps=2, warmup_lr=0.01)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    x, y = np.ones((16, 3), "float32"), np.ones((16, 1), "float32")
    record = _RecordRate()
    history = model.fit(x, y, batch_size=4, epochs=2, callbacks=[RecipeLearningRate(recipe), record], verbose=0)
    np.testing.assert_allclose(record.rates, [0.01, 0.01, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01], rtol=1e-6)
    np.testing.assert_allclose(history.history["lr"], [0.1, 0.01], rtol=1e-6)


def test_mnist1d_recipe_is_adam_and_optimizers_are_checked():
    from keras_dropact.training.run import make_optimizer

    r = recipes.get("mnist1d")
    # MNIST-1D's benchmark: Adam 1e-2, batch 100, no weight decay, 6000 steps of 4000 signals.
    assert (r.optimizer, r.lr, r.batch_size, r.weight_decay, r.milestones) == ("adam", 1e-2, 100, 0.0, ())
    assert r.epochs * 4000 // r.batch_size == 6000
    adam = make_optimizer(r)
    assert isinstance(adam, keras.optimizers.Adam)
    assert (adam.beta_1, adam.beta_2, adam.epsilon) == (0.9, 0.999, 1e-8)  # PyTorch's defaults
    sgd = make_optimizer(recipes.get("quick"))
    assert isinstance(sgd, keras.optimizers.SGD) and sgd.nesterov and sgd.momentum == 0.9
    with pytest.raises(ValueError, match="Unknown optimizer 'adamw'. Valid optimizers: sgd, adam"):
        Recipe(epochs=1, optimizer="adamw")
