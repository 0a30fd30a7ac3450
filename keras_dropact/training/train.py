"""`train(config)`: one training run with `model.fit`.

The one training path of the package: `dropact train` and every experiment
of `dropact repro` (CPU and paper scale) call `train`, so all runs share the
model construction, compilation, recipe schedule, data, evaluation and the
`results.json` format. Experiments add what they need through arguments:
extra callbacks (Figure 6's `ShiftRatioMonitor`), a `model_builder` for a
network that is not a preset, and `config.light` for short runs that need no
backups, checkpoints, TensorBoard logs or saved model.
"""

import csv
import dataclasses
import os
import platform
import time

import keras
import numpy as np

from keras_dropact import models
from keras_dropact import pipelines
from keras_dropact import __version__
from keras_dropact.training import distribution
from keras_dropact.training import run_dir as rd
from keras_dropact.training.config import TrainConfig
from keras_dropact.training.schedule import RecipeLearningRate


class _EpochTimer(keras.callbacks.Callback):
    """Logs `epoch_seconds`, the training time of each epoch (no validation)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_test_begin(self, logs=None):
        self._train_seconds = time.perf_counter() - self._start

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = getattr(
                self, "_train_seconds", time.perf_counter() - self._start
            )


class _StepAndEpochBackup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore that backs up every `save_freq` steps AND at every epoch end.

    Keras backs up either per epoch or per N steps; with steps only, an epoch
    that ends between two backups would be run again after a crash. Both
    together mean a kill loses at most `save_freq` steps and never a finished
    epoch.
    """

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self._save_model()


def build_model(config, info, recipe):
    """The preset `config.model` for the dataset `info`, as the recipe trains it."""
    overrides = {"seed": config.seed, "weight_decay": recipe.weight_decay}
    if recipe.dropout is not None:
        overrides["dropout"] = recipe.dropout
    return models.build(
        config.model,
        num_classes=info["num_classes"],
        input_shape=info["shape"],
        activation=config.activation,
        p=config.p,
        **overrides,
    )


def augmentation(config, info):
    """The training augmentation: the flag, else the dataset's recipe default."""
    if config.augment is None:
        return info["recipe_augment"]
    return None if config.augment == "none" else config.augment


def make_optimizer(recipe):
    """The recipe's optimizer: SGD with momentum, or Adam with PyTorch's defaults."""
    if recipe.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=recipe.lr, epsilon=1e-8)
    return keras.optimizers.SGD(
        learning_rate=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov
    )


def compile_model(model, recipe):
    model.compile(
        optimizer=make_optimizer(recipe),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


def read_history(log_path):
    """Per-epoch rows of `log.csv`, the last row winning for a repeated epoch."""
    rows = {}
    with open(log_path, newline="") as f:
        for row in csv.DictReader(f):
            rows[int(row["epoch"])] = {k: float(v) for k, v in row.items() if k != "epoch"}
    return [{"epoch": epoch, **rows[epoch]} for epoch in sorted(rows)]


def versions():
    import tensorflow as tf

    return {
        "keras_dropact": __version__,
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def train(config, resume=False, verbose=1, callbacks=(), model_builder=None):
    """Trains `config.model` on `config.dataset`; returns the results dict.

    A new run needs a run directory that does not exist yet; `resume=True`
    continues the run in `config.run_dir` from its last backup (taken every
    `config.backup_every` steps and at every epoch end) with the
    configuration saved there. The reported test error is the last epoch's;
    no checkpoint is ever picked by its test accuracy.

    Args:
        config: a `TrainConfig`. With `config.light`, no backup, checkpoint,
            TensorBoard log or saved model is written (`config.json`,
            `log.csv` and `results.json` are), and resuming restarts the
            run from epoch 0.
        resume: continue the run in `config.run_dir`.
        verbose: `model.fit` verbosity.
        callbacks: extra Keras callbacks, run before the run's own loggers so
            that what they write into the epoch logs is recorded.
        model_builder: `model_builder(config, info, recipe) -> keras.Model`
            for a network that is not a preset of `keras_dropact.models`
            (`info` is `pipelines.info(config.dataset)`); default: the preset
            `config.model`.
    """
    if resume:
        run_dir = config.run_dir
        rd.open_run_dir(run_dir, resume=True)
        rd.check_backup(run_dir)
        config = TrainConfig.load(os.path.join(run_dir, rd.CONFIG))
        config.run_dir = run_dir
    else:
        config.run_dir = config.run_dir or rd.default_run_dir(config)
        run_dir = config.run_dir
        if model_builder is None:
            models.get_preset(config.model)  # Fails early, listing the presets.
    # The strategy before any TensorFlow work: MultiWorkerMirroredStrategy
    # configures the runtime. Only its chief creates the run directory.
    strategy = distribution.resolve(config.strategy)
    if not resume:
        # Fail on an unavailable dataset before creating anything; with
        # --data-dir the data must be prepared there: never download.
        pipelines.load(
            config.dataset, "test", 1, data_dir=config.data_dir,
            download=config.data_dir is None,
        )
        if distribution.is_chief(strategy):
            rd.open_run_dir(run_dir, resume=False)
            config.save(os.path.join(run_dir, rd.CONFIG))
    info = pipelines.info(config.dataset)
    recipe = config.resolved_recipe()

    previous_policy = keras.config.dtype_policy()
    if config.mixed_precision:
        keras.config.set_dtype_policy(_mixed_policy())
    try:
        with distribution.worker_run_dir(run_dir, strategy) as out_dir:
            results = _fit(
                config, recipe, info, strategy, out_dir, verbose,
                callbacks, model_builder or build_model,
            )
    finally:
        keras.config.set_dtype_policy(previous_policy)
    return results


def _fit(config, recipe, info, strategy, run_dir, verbose, extra_callbacks, model_builder):
    """Trains and evaluates under `strategy`, writing into `run_dir`.

    `--batch-size` is the global batch: `distribution.distribute` gives each
    replica its share, each worker reading its own shard of the examples.
    """
    keras.utils.set_random_seed(config.seed)
    train_data = distribution.distribute(
        strategy,
        pipelines.dataset_fn(
            config.dataset,
            "train",
            recipe.batch_size,
            augment=augmentation(config, info),
            data_dir=config.data_dir,
            shuffle=True,
            seed=config.seed,
        ),
    )
    test_data = distribution.distribute(
        strategy,
        pipelines.dataset_fn(
            config.dataset, "test", recipe.batch_size, data_dir=config.data_dir
        ),
    )
    with strategy.scope():
        model = model_builder(config, info, recipe)
        compile_model(model, recipe)
    distribution.allow_multi_worker_fit(model, strategy)
    callbacks = [RecipeLearningRate(recipe), *extra_callbacks, _EpochTimer()]
    if not config.light:
        callbacks += [
            _StepAndEpochBackup(
                os.path.join(run_dir, rd.BACKUP),
                save_freq=config.backup_every,
                delete_checkpoint=False,
                double_checkpoint=True,
            ),
            keras.callbacks.ModelCheckpoint(os.path.join(run_dir, rd.CHECKPOINT)),
            keras.callbacks.TensorBoard(os.path.join(run_dir, rd.TENSORBOARD)),
        ]
    # A light run restarts at epoch 0 when resumed: its log starts over too.
    callbacks.append(
        keras.callbacks.CSVLogger(os.path.join(run_dir, rd.LOG), append=not config.light)
    )
    test_steps = distribution.steps(strategy, info["splits"]["test"], recipe.batch_size)
    start = time.perf_counter()
    model.fit(
        train_data,
        validation_data=test_data,
        epochs=recipe.epochs,
        steps_per_epoch=distribution.steps(
            strategy, info["splits"]["train"], recipe.batch_size, config.steps_per_epoch
        ),
        validation_steps=test_steps,
        shuffle=False,  # The pipeline shuffles.
        callbacks=callbacks,
        verbose=verbose,
    )
    wall_seconds = time.perf_counter() - start
    test_loss, test_accuracy = model.evaluate(test_data, steps=test_steps, verbose=0)
    if not config.light:
        model.save(os.path.join(run_dir, rd.MODEL))

    history = read_history(os.path.join(run_dir, rd.LOG))
    steps = config.steps_per_epoch or int(np.ceil(info["splits"]["train"] / recipe.batch_size))
    train_seconds = sum(row["epoch_seconds"] for row in history[1:]) or history[0]["epoch_seconds"]
    timed_epochs = max(len(history) - 1, 1)
    results = {
        "config": config.to_dict(),
        "recipe": dataclasses.asdict(recipe),
        "trainable_parameters": count_trainable_parameters(model),
        "test_error": float(1.0 - test_accuracy),
        "test_loss": float(test_loss),
        "epochs_completed": len(history),
        "history": history,
        "wall_seconds": wall_seconds,
        # The first epoch includes tracing and compilation: timed from the second.
        "images_per_second": steps * recipe.batch_size * timed_epochs / train_seconds,
        "versions": versions(),
    }
    rd.write_json(os.path.join(run_dir, rd.RESULTS), results)
    return results


def count_trainable_parameters(model):
    """PyTorch's `sum(p.numel() for p in model.parameters())`: trainable only.

    Keras' `count_params()` also counts BatchNorm's moving statistics.
    """
    return int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))


def _mixed_policy():
    import tensorflow as tf

    return "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
