"""`train(config)`: one training run with `model.fit`.

The one training path of the package: `dropact train` and every experiment
of `dropact repro` (CPU and paper scale) run a `Run` (`run.py`), most through
this function, so all runs share the model construction, compilation, recipe
schedule, data, evaluation and the `results.json` format. Experiments add
what they need through arguments: extra callbacks (Figure 6's
`ShiftRatioMonitor`), a `model_builder` for a network that is not a preset,
and `config.light` for short runs that need no backups, checkpoints,
TensorBoard logs or saved model.
"""

from keras_dropact.training.run import Run


def train(config, resume=False, verbose=1, callbacks=(), model_builder=None):
    """Trains `config.model` on `config.dataset`; returns the results dict.

    A new run needs a run directory that does not exist yet; `resume=True`
    continues the run in `config.run_dir` exactly where its last backup
    (taken every `config.backup_every` optimizer steps, at every epoch end
    and on SIGINT/SIGTERM) left it, with the configuration saved there: the
    same optimizer steps on the same batches with the same random streams
    as an uninterrupted run (docs/guides/training.md). Resuming a finished run does
    nothing and returns its results. The reported test error is the last
    epoch's; no checkpoint is ever picked by its test accuracy.

    Args:
        config: a `TrainConfig`. With `config.light`, no backup, checkpoint,
            TensorBoard log or saved model is written (`config.json`,
            `log.csv` and `results.json` are), and resuming restarts the
            run from epoch 0. When resuming, only `config.run_dir` is read.
        resume: continue the run in `config.run_dir`.
        verbose: `model.fit` verbosity.
        callbacks: extra Keras callbacks, run before the run's own loggers so
            that what they write into the epoch logs is recorded.
        model_builder: `model_builder(config, info, recipe) -> keras.Model`
            for a network that is not a preset of `keras_dropact.models`
            (`info` is `pipelines.info(config.dataset)`); default: the preset
            `config.model`.

    Raises:
        stops.TrainingDiverged: the loss or the weights stopped being
            finite; `results.json` says so (status "diverged", the step).
        stops.TrainingInterrupted: SIGINT or SIGTERM; a backup was saved.
        RuntimeError: another process trains this run, or `resume` finds no
            usable backup for a run that has progress to lose.
    """
    if resume:
        run = Run.resume(config.run_dir, model_builder=model_builder)
    else:
        run = Run.new(config, model_builder=model_builder)
    return run.fit(verbose=verbose, callbacks=callbacks)
