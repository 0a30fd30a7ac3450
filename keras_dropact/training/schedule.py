"""Per-step learning rate from a recipe, as a Keras callback."""

import keras


class RecipeLearningRate(keras.callbacks.Callback):
    """Sets the optimiser's learning rate before every batch from a `Recipe`.

    The rate is a function of the epoch (PyTorch's MultiStepLR milestones)
    and of the optimiser's step counter (warm-up), both of which survive a
    resume, so a resumed run follows the same schedule. The current rate is
    logged as `lr` at the end of each epoch.
    """

    def __init__(self, recipe):
        super().__init__()
        self.recipe = recipe
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        self.model.optimizer.learning_rate = self.recipe.learning_rate(self._epoch, step)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
