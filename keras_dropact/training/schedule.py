"""The learning rate of a recipe, set by a Keras callback."""

import keras


class RecipeLearningRate(keras.callbacks.Callback):
    """Sets the optimiser's learning rate from a `Recipe`.

    The rate is a function of the epoch (PyTorch's MultiStepLR milestones),
    set once at each epoch's start, and, during warm-up only, of the global
    step. Both come from state that survives a resume (the epoch Keras
    resumes at and the optimiser's step counter), so a resumed run follows
    the same schedule. The rate is logged as `lr` at the end of each epoch.
    """

    def __init__(self, recipe):
        super().__init__()
        self.recipe = recipe
        self._epoch = 0
        self._step = 0

    def on_epoch_begin(self, epoch, logs=None):
        # The optimiser's step counter (a resumed run's backup restored it
        # before `fit`) is the schedule's step.
        self._step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        self._epoch = epoch
        self._set()

    def on_train_batch_begin(self, batch, logs=None):
        # Only warm-up changes the rate within an epoch; reading nothing from
        # the device keeps this callback off the step's critical path.
        if self._step <= self.recipe.warmup_steps:
            self._set()
        self._step += 1

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def _set(self):
        self.model.optimizer.learning_rate = self.recipe.learning_rate(self._epoch, self._step)
