"""The learning rate of a recipe, as a Keras `LearningRateSchedule`.

`recipe_schedule(recipe, steps_per_epoch)` is a `PiecewiseConstantDecay` of
the optimizer step: at step s it is `recipe.learning_rate(s //
steps_per_epoch, s)` (the warm-up of `warmup_steps` steps, then the
MultiStepLR milestones of epochs), the values the per-batch callback of
earlier versions set, step for step. The optimizer evaluates it at its own
step counter inside the training step, so no Python runs per batch; a
resumed run restores that counter from its backup and so follows the same
schedule. Keras saves it with the optimizer's configuration
(`checkpoint.keras`, `model.keras`).

The optimizer then holds no learning-rate variable: backups of earlier
versions (format 1), which saved one, are read by `backups.py`.
"""

import keras


def recipe_schedule(recipe, steps_per_epoch):
    """The `recipe`'s learning rate as a function of the optimizer step.

    The rate changes only where the warm-up ends and at the first step of
    each milestone epoch; between two changes it is the rate of the first
    step, taken from `Recipe.learning_rate` (the one definition of it).
    """
    changes = sorted({recipe.warmup_steps, *(m * steps_per_epoch for m in recipe.milestones)} - {0})
    values = [float(recipe.learning_rate(start // steps_per_epoch, start)) for start in (0, *changes)]
    boundaries = [start - 1 for start in changes]  # values[i + 1] for steps > boundaries[i].
    if not boundaries:  # One rate for the whole run; Keras needs a boundary.
        boundaries, values = [0], values * 2
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


class LearningRateLog(keras.callbacks.Callback):
    """Logs the rate of each epoch's last step as `lr` in the epoch logs
    (history, log.csv), as `schedule` gave it to the optimizer."""

    def __init__(self, schedule):
        super().__init__()
        self.schedule = schedule

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            last = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) - 1
            logs["lr"] = float(keras.ops.convert_to_numpy(self.schedule(max(last, 0))))
