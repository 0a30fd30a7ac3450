"""`train(config)`: one training run with `model.fit`.

The one training path of the package: `dropact train` and every experiment
of `dropact repro` (CPU and paper scale) call `train`, so all runs share the
model construction, compilation, recipe schedule, data, evaluation and the
`results.json` format. Experiments add what they need through arguments:
extra callbacks (Figure 6's `ShiftRatioMonitor`), a `model_builder` for a
network that is not a preset, and `config.light` for short runs that need no
backups, checkpoints, TensorBoard logs or saved model.
"""

import contextlib
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
from keras_dropact.training import faults
from keras_dropact.training import resume as rs
from keras_dropact.training import run_dataset
from keras_dropact.training import run_dir as rd
from keras_dropact.training.config import TrainConfig
from keras_dropact.training.schedule import RecipeLearningRate
from keras_dropact.training.validate import augmentation
from keras_dropact.training.validate import model_overrides
from keras_dropact.training.validate import validate


def build_model(config, info, recipe):
    """The preset `config.model` for the dataset `info`, as the recipe trains it."""
    return models.build(
        config.model,
        num_classes=info["num_classes"],
        input_shape=info["shape"],
        activation=config.activation,
        p=config.p,
        **model_overrides(config, recipe),
    )


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


def versions():
    import tensorflow as tf

    found = {
        "keras_dropact": __version__,
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    if found["keras_backend"] == "jax":
        import jax

        found["jax"] = jax.__version__
    return found


def train(config, resume=False, verbose=1, callbacks=(), model_builder=None):
    """Trains `config.model` on `config.dataset`; returns the results dict.

    A new run needs a run directory that does not exist yet; `resume=True`
    continues the run in `config.run_dir` exactly where its last backup
    (taken every `config.backup_every` optimizer steps, at every epoch end
    and on SIGINT/SIGTERM) left it, with the configuration saved there: the
    same optimizer steps on the same batches with the same random streams
    as an uninterrupted run (docs/runs.md). Resuming a finished run does
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
        resume.TrainingDiverged: the loss or the weights stopped being
            finite; `results.json` says so (status "diverged", the step).
        resume.TrainingInterrupted: SIGINT or SIGTERM; a backup was saved.
        RuntimeError: another process trains this run, or `resume` finds no
            usable backup for a run that has progress to lose.
    """
    started = time.perf_counter()
    if resume:
        run_dir = config.run_dir
        rd.open_run_dir(run_dir, resume=True)
        config = _load_config(run_dir)
    else:
        config.run_dir = config.run_dir or rd.default_run_dir(config)
        run_dir = config.run_dir
    # The strategy before any TensorFlow work: MultiWorkerMirroredStrategy
    # configures the runtime. Only its chief creates the run directory.
    strategy = distribution.resolve(config.strategy)
    chief = distribution.is_chief(strategy)
    # Model, dataset, data and their combination, before creating anything.
    validate(config, model_builder, strategy.num_replicas_in_sync)
    with contextlib.ExitStack() as stack:
        if chief:
            if not resume:
                rd.open_run_dir(run_dir, resume=False)
            stack.enter_context(rd.locked(run_dir))
            if not resume:
                run_dataset.write(run_dir, config)  # Before config.json: see run_dataset.
                config.save(os.path.join(run_dir, rd.CONFIG))
        if resume:
            previous = rd.read_results(run_dir)
            if previous is not None:
                return _finished(run_dir, previous)
            run_dataset.check_unchanged(run_dir, config)
            if chief:
                rd.remove_temporaries(run_dir)
        info = pipelines.info(config.dataset, image_size=config.image_size)
        recipe = config.resolved_recipe()
        previous_policy = keras.config.dtype_policy()
        if config.mixed_precision:
            keras.config.set_dtype_policy(_mixed_policy())
        try:
            with _op_determinism(config.deterministic), distribution.worker_run_dir(
                run_dir, strategy
            ) as out_dir, distribution.run_scope(strategy):
                return _fit(
                    config, recipe, info, strategy, out_dir, verbose,
                    callbacks, model_builder or build_model, resume, started,
                )
        finally:
            keras.config.set_dtype_policy(previous_policy)


def _load_config(run_dir):
    path = os.path.join(run_dir, rd.CONFIG)
    try:
        config = TrainConfig.load(path)
    except (OSError, ValueError, TypeError) as error:
        raise RuntimeError(
            f"Cannot resume {run_dir!r}: {path!r} is unreadable ({error})."
        ) from error
    config.run_dir = run_dir
    return config


def _finished(run_dir, results):
    """The results of a run that has ended: resuming it changes nothing."""
    if results.get("status") == "diverged":
        raise RuntimeError(
            f"Cannot resume {run_dir!r}: it diverged at optimizer step "
            f"{results.get('diverged_at_step')}, and resuming would repeat the "
            "same steps. Start a new run with a lower --lr."
        )
    return results


@contextlib.contextmanager
def _op_determinism(enabled):
    """TensorFlow's op determinism (`--deterministic`) for the `with` block."""
    if not enabled:
        yield
        return
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config  # is_/disable_: not public.

    was_enabled = tf_config.is_op_determinism_enabled()
    tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        if not was_enabled:
            tf_config.disable_op_determinism()


def _check_nothing_to_lose(run_dir, backups):
    """Lets a resume without any backup start at step 0 only if nothing is lost.

    That happens when a run is killed before its first backup. A run with a
    finished epoch (log.csv, checkpoint.keras) or model must not be trained
    again from scratch over it.
    """
    foreign = backups.foreign_files()
    if foreign:
        raise RuntimeError(
            f"Cannot resume {run_dir!r}: {backups.directory!r} holds no backup "
            f"this version can read ({', '.join(foreign)}). Nothing was changed; "
            "start a new run."
        )
    progress = [
        name for name in (rd.LOG, rd.CHECKPOINT, rd.MODEL)
        if os.path.exists(os.path.join(run_dir, name))
    ]
    if progress:
        raise RuntimeError(
            f"Cannot resume {run_dir!r}: {backups.directory!r} holds no backup, "
            f"but the run has progress ({', '.join(progress)}) that training "
            "from step 0 would replace. Nothing was changed; put the backup "
            "folder back from a copy, or start a new run."
        )


def _fit(config, recipe, info, strategy, run_dir, verbose, extra_callbacks,
         model_builder, resume, started):
    """Trains and evaluates under `strategy`, writing into `run_dir`.

    `--batch-size` is the global batch: `distribution.distribute` gives each
    replica its share, each worker reading its own shard of the examples.
    A resumed run first finishes its interrupted epoch (a `fit` of the
    remaining steps), then runs the other epochs.
    """
    keras.utils.set_random_seed(config.seed)
    batch_size = recipe.batch_size
    # JAX data parallel needs full batches: every pass then drops its rest.
    drop_remainder = distribution.drop_remainder(strategy)
    steps_per_epoch = config.steps_per_epoch or (
        info["splits"]["train"] // batch_size if drop_remainder
        else -(-info["splits"]["train"] // batch_size)
    )
    test_data = distribution.distribute(
        strategy,
        pipelines.dataset_fn(
            config.dataset, "test", batch_size, data_dir=config.data_dir,
            drop_remainder=drop_remainder, image_size=config.image_size,
        ),
    )
    test_steps = distribution.steps(strategy, info["splits"]["test"], batch_size)
    with strategy.scope():
        model = model_builder(config, info, recipe)
        compile_model(model, recipe)
    distribution.allow_multi_worker_fit(model, strategy)

    backups = None if config.light else rs.Backups(os.path.join(run_dir, rd.BACKUP))
    state = None
    if resume and backups is not None:
        with strategy.scope():
            state = backups.restore(model)
        if state is None:
            _check_nothing_to_lose(run_dir, backups)
    num_pipelines, num_replicas = distribution.input_layout(strategy)

    def examples(first_step, stop_step):
        return pipelines.stream_examples(
            config.dataset, "train", batch_size, first_step, stop_step,
            num_pipelines=num_pipelines, num_replicas=num_replicas,
            drop_remainder=drop_remainder,
        )

    run_state = rs.RunState(
        run_dir, steps_per_epoch, examples, backups, config.backup_every, state, started
    )
    run_state.set_model(model)
    if state is not None:
        # The files derived from the backup, which a kill may have missed.
        run_state.write_epoch_files(checkpoint=state["step"] == 0 and state["epoch"] > 0)
    callbacks = [RecipeLearningRate(recipe), *extra_callbacks, run_state]
    if not config.light:
        callbacks.append(keras.callbacks.TensorBoard(os.path.join(run_dir, rd.TENSORBOARD)))

    def fit(epochs, steps):
        train_data = distribution.distribute(
            strategy,
            pipelines.stream_fn(
                config.dataset,
                "train",
                batch_size,
                start_step=run_state.optimizer_steps,
                augment=augmentation(config, info),
                data_dir=config.data_dir,
                shuffle=True,
                seed=config.seed,
                drop_remainder=drop_remainder,
                image_size=config.image_size,
            ),
        )
        model.fit(
            train_data,
            validation_data=test_data,
            initial_epoch=run_state.epoch,
            epochs=epochs,
            steps_per_epoch=steps,
            validation_steps=test_steps,
            shuffle=False,  # The pipeline shuffles.
            callbacks=callbacks,
            verbose=verbose,
        )

    try:
        with rs.StopSignals(run_state):
            if run_state.step > 0:  # Finish the interrupted epoch.
                fit(run_state.epoch + 1, steps_per_epoch - run_state.step)
            if run_state.epoch < recipe.epochs:
                fit(recipe.epochs, steps_per_epoch)
            if run_state.signal is not None:
                run_state._interrupt()
            test_loss, test_accuracy = model.evaluate(test_data, steps=test_steps, verbose=0)
            if not config.light:
                rd.save_model(
                    model, os.path.join(run_dir, rd.MODEL),
                    before_rename=lambda: faults.point("final_save"),
                )
    except rs.TrainingDiverged as error:
        rd.write_json(os.path.join(run_dir, rd.RESULTS), {
            "status": "diverged",
            "diverged_at_step": error.optimizer_step,
            "diverged_in_epoch": error.epoch,
            "message": str(error),
            "config": config.to_dict(),
            "recipe": dataclasses.asdict(recipe),
            "test_error": None,
            "test_loss": None,
            "epochs_completed": len(run_state.history),
            "optimizer_steps": error.optimizer_step,
            "history": run_state.history,
            **run_state.counters(),
            "versions": versions(),
        })
        raise
    results = {
        "status": "finished",
        "config": config.to_dict(),
        "recipe": dataclasses.asdict(recipe),
        "trainable_parameters": count_trainable_parameters(model),
        "test_error": float(1.0 - test_accuracy),
        "test_loss": float(test_loss),
        "epochs_completed": len(run_state.history),
        "optimizer_steps": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
        "history": run_state.history,
        # Over all processes of the run; speed without each process' first
        # (tracing) step and without validation; see RunState.counters.
        **run_state.counters(),
        "distribution": distribution.describe(strategy),
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
    return "mixed_float16" if distribution.has_gpu() else "mixed_bfloat16"
