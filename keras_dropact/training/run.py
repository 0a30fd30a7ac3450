"""`Run`: one training run, from its configuration to its results.

    run = Run.new(config)            # or Run.resume(run_dir)
    results = run.fit()

A run owns its configuration, its run directory (`RunDir`), the `Runtime` it
executes on, its model, its backups and its `TrainingState`. `fit` goes:

1. the backend checked, the runtime made (`strategies`), then `validate`:
   nothing is written yet;
2. the chief creates (new run) and locks the run directory and writes
   dataset.json and config.json; a resumed run that has ended returns its
   results;
3. the dtype policy and op determinism set (`numerics`); the model built,
   compiled and restored from the newest usable backup (`Backups.restore`);
4. the start of the run's TensorBoard HParams session (`hparams`; a
   resumed run keeps the one it started), then `model.fit` of the
   interrupted epoch's remaining steps and of the other epochs, with the
   `Progress` callback (backups, history, log.csv, checkpoint.keras,
   divergence and signal stops);
5. the evaluation (a non-finite one is a divergence), model.keras, the
   end of the HParams session, results.json.

SIGINT and SIGTERM only set a flag (`interrupts.StopSignals`, active for
the whole `fit`), read between these stages and after every step: the run
stops where nothing is lost, with one line (`stops.TrainingInterrupted`).

Every process of a distributed run makes the same calls; only the chief
writes the run directory, the others a temporary copy (`RunDir.writable`).
"""

import contextlib
import dataclasses
import importlib.metadata
import platform
import sys
import time

import keras
import numpy as np

from keras_dropact import __version__
from keras_dropact import models
from keras_dropact import pipelines
from keras_dropact.interrupts import StopSignals
from keras_dropact.optimizers import SGD_OF_CONVENTION
from keras_dropact.training import faults
from keras_dropact.training import hparams
from keras_dropact.training import run_dataset
from keras_dropact.training import numerics
from keras_dropact.training import strategies
from keras_dropact.training import state as state_lib
from keras_dropact.training import user_models
from keras_dropact.training.backups import Backups
from keras_dropact.training.counters import Counters
from keras_dropact.training.progress import Progress
from keras_dropact.training.results import Results
from keras_dropact.training.run_dir import BACKUP
from keras_dropact.training.run_dir import TENSORBOARD
from keras_dropact.training.run_dir import RunDir
from keras_dropact.training.run_dir import default_path
from keras_dropact.training.schedule import LearningRateLog
from keras_dropact.training.schedule import recipe_schedule
from keras_dropact.training.state import TrainingState
from keras_dropact.training.stops import CannotWrite
from keras_dropact.training.stops import TrainingDiverged
from keras_dropact.training.stops import check_finite
from keras_dropact.training.stops import raise_if_signalled
from keras_dropact.training.stops import resume_command
from keras_dropact.training.validate import validate


def build_model(config, info, recipe):
    """The preset `config.model` for the dataset `info`, as the recipe trains it
    (`user_models.build` makes the models that are not presets)."""
    return models.build(
        config.model,
        num_classes=info["num_classes"],
        input_shape=info["shape"],
        activation=config.activation,
        p=config.p,
        **config.model_arguments(),
    )


def make_optimizer(recipe, steps_per_epoch, momentum_convention="pytorch"):
    """The recipe's optimizer with its learning-rate schedule (`recipe_schedule`):
    SGD with momentum, PyTorch's (`TorchSGD`) or, for runs of earlier versions,
    Keras' (`TrainConfig.momentum_convention`); or Adam with PyTorch's defaults."""
    schedule = recipe_schedule(recipe, steps_per_epoch)
    if recipe.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=schedule, epsilon=1e-8)
    return SGD_OF_CONVENTION[momentum_convention](
        learning_rate=schedule, momentum=recipe.momentum, nesterov=recipe.nesterov
    )


def compile_model(model, recipe, steps_per_epoch, momentum_convention="pytorch"):
    model.compile(
        optimizer=make_optimizer(recipe, steps_per_epoch, momentum_convention),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


def count_trainable_parameters(model):
    """PyTorch's `sum(p.numel() for p in model.parameters())`: trainable only.

    Keras' `count_params()` also counts BatchNorm's moving statistics.
    """
    return int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))


def versions():
    """The software a run used, for `results.json` and export metadata."""
    import tensorflow as tf

    backend = strategies.loaded_backend()
    found = {
        "keras_dropact": __version__,
        "keras": keras.__version__,
        "keras_backend": backend,
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    found.setdefault(backend, importlib.metadata.version(backend))
    return found


class Run:
    """One training run (see the module docstring); `fit` it once.

    Make it with `Run.new(config)` or `Run.resume(run_dir)`.

    Args:
        config: the run's `TrainConfig` (`run_dir` set).
        resumed: continue the run in `config.run_dir` from its last backup.
        model_builder: `model_builder(config, info, recipe) -> keras.Model`
            for a network that is not a preset; default `build_model`.
    """

    def __init__(self, config, resumed=False, model_builder=None):
        self.started = time.perf_counter()
        self.config = config
        self.dir = RunDir(config.run_dir)
        self.resumed = resumed
        self.model_builder = model_builder
        # What `fit` makes: the runtime, the data and the training objects.
        self.runtime = self.info = self.recipe = self.out = None
        self.model = self.backups = self.state = self.counters = self.progress = None
        self.test_data = self.test_steps = self.signals = self.verbose = None
        self.converted_sites = None  # `user_models.build`'s count, for results.json.

    @classmethod
    def new(cls, config, model_builder=None):
        """A new run of `config`; `fit` creates its directory (default
        runs/MODEL-DATASET-ACTIVATION-TIME), which must not exist. Its
        backend is the loaded one unless `config.backend` names it."""
        config.run_dir = config.run_dir or default_path(config)
        config.backend = config.backend or strategies.loaded_backend()
        if model_builder is None:
            user_models.record_digests(config)
        return cls(config, resumed=False, model_builder=model_builder)

    @classmethod
    def resume(cls, run_dir, model_builder=None):
        """The run in `run_dir`, to continue with the configuration saved there.

        Raises:
            FileNotFoundError: no run was started in `run_dir`.
            RuntimeError: its config.json is unreadable.
        """
        return cls(RunDir(run_dir).read_config(), resumed=True, model_builder=model_builder)

    def ended(self):
        """The results of a resumed run that has already ended, else None.

        Raises:
            RuntimeError: the run diverged; resuming would repeat the same steps.
        """
        results = self.dir.read_results() if self.resumed else None
        if results is not None and results.status == "diverged":
            raise RuntimeError(
                f"Cannot resume {self.dir.path!r}: it diverged at optimizer step "
                f"{results.diverged_at_step}, and resuming would repeat the "
                "same steps. Start a new run with a lower --lr."
            )
        return results

    def fit(self, verbose=1, callbacks=(), signals=None):
        """Trains, evaluates and records the run; returns its `Results`.

        A resumed run that has ended returns its results and changes nothing.
        `callbacks` run before the run's own loggers, so that what they write
        into the epoch logs is recorded. SIGINT and SIGTERM stop the run at
        the next point where nothing is lost (`signals`).

        Args:
            signals: the `interrupts.StopSignals` to read (the `dropact`
                command's, held since it started); default: new ones,
                active for the whole `fit`.

        Raises:
            stops.TrainingDiverged: the loss, the weights or the evaluation
                stopped being finite (results.json says so).
            stops.TrainingInterrupted: SIGINT or SIGTERM (after a backup,
                once training has started).
            stops.CannotWrite: a file could not be written (a full disk);
                nothing half-written is left.
            ValueError: a configuration `validate` refuses (nothing
                written); a backup of other epoch lengths than the run's.
            FileExistsError: a new run's directory exists.
            RuntimeError: another process trains the run; a resumed run
                diverged, its files are damaged, or it has no usable backup
                but progress to lose.
        """
        self.signals, self.verbose = signals or StopSignals(), verbose
        with contextlib.ExitStack() as stack:
            stack.enter_context(self.signals)
            ended = self._start(stack)
            if ended is not None:
                return ended
            try:
                return self._train(verbose, callbacks)
            except CannotWrite as error:
                raise error.advise(
                    "this light run keeps no backup: free space, then run it again"
                    if self.config.light else "the run keeps its last complete backup. Free "
                    f"space, then resume with: {resume_command(self.dir.path)}"
                ) from error.__cause__

    def _start(self, stack):
        """Everything before the model: the runtime, the checks, the chief's
        claim on the run directory, the data's description, the scopes
        (entered on `stack`). Returns the results of a resumed run that has
        ended, else None."""
        faults.point("run_start")
        strategies.check_backend(self.config.backend, (
            f"Run {self.dir.path!r} (its config.json)" if self.resumed else "This run"))
        self.runtime = strategies.make(self.config.strategy)
        validate(self.config, self.model_builder, self.runtime.num_replicas)
        raise_if_signalled(self.signals, self.dir.path, started=False)
        if self.runtime.is_chief:
            self._claim(stack)
            faults.point("claimed")
        ended = self.ended()
        if ended is not None:
            return ended
        if self.resumed:
            run_dataset.check_unchanged(self.dir.path, self.config)
            if self.model_builder is None:
                user_models.check_unchanged(self.config)
        if self.runtime.is_chief and self.resumed:
            self.dir.check_folders()
            self.dir.remove_temporaries()
        self.info = pipelines.info(self.config.dataset, **self.config.reading())
        self.recipe = self.config.resolved_recipe()
        has_gpu = self.runtime.has_gpu()
        stack.enter_context(numerics.dtype_policy(self.config.mixed_precision, has_gpu))
        stack.enter_context(numerics.op_determinism(self.config.deterministic))
        self.out = RunDir(stack.enter_context(
            self.dir.writable(self.runtime.is_chief, self.runtime.task)))
        stack.enter_context(self.runtime.scope())
        return None

    def _claim(self, stack):
        """The chief's hold on the run directory: created (new run), locked,
        dataset.json and config.json written (new run), for the `stack`'s
        lifetime. A new run that cannot be started leaves no directory."""
        if not self.resumed:
            self.dir.create()
        try:
            stack.enter_context(self.dir.lock())
            if not self.resumed:
                note = run_dataset.write(self.dir.path, self.config)  # Before config.json.
                self.dir.write_config(self.config)
                if note and self.verbose:
                    print(note, file=sys.stderr)
        except BaseException as error:
            if not self.resumed:
                self.dir.discard()
            if isinstance(error, CannotWrite):
                error.advise("the new run directory was removed; free space, then start "
                             "the run again")
            raise

    def _train(self, verbose, extra_callbacks):
        """Builds, restores, trains and evaluates; writes results.json (also
        for a divergence)."""
        keras.utils.set_random_seed(self.config.seed)
        self.test_data = self._distributed(pipelines.dataset_fn, "test")
        self.test_steps = self.runtime.steps(self.info["splits"]["test"], self.recipe.batch_size)
        self._build()
        self._restore()
        raise_if_signalled(self.signals, self.dir.path)
        if self.runtime.is_chief and not self.config.light:  # Training starts: its session.
            hparams.write_session_start(self.dir.file(TENSORBOARD), hparams.run_hparams(
                self.config, self.recipe, self.info))
        self.signals.notice = "stopping after this step" + (
            "" if self.config.light else " and its backup")
        schedule = recipe_schedule(self.recipe, self.state.steps_per_epoch)
        callbacks = [LearningRateLog(schedule), *extra_callbacks, self.progress]
        if not self.config.light:
            callbacks.append(keras.callbacks.TensorBoard(self.out.file(TENSORBOARD)))
        try:
            self._fit_epochs(callbacks, verbose)
            self.progress.stop_if_signalled()
            evaluation = self._evaluate()
            self.progress.stop_if_signalled()
            if not self.config.light:
                self.out.save_model(self.model)
        except TrainingDiverged as error:
            self._record(self._results(
                status="diverged",
                diverged_at_step=error.optimizer_step,
                diverged_in_epoch=error.epoch,
                message=str(error),
                test_error=None,
                test_loss=None,
                optimizer_steps=error.optimizer_step,
            ))
            raise
        results = self._results(status="finished", **evaluation)
        self._record(results)
        return results

    def _record(self, results):
        """The run's end: its HParams session's end (`hparams`), then results.json."""
        if not self.config.light:
            hparams.write_session_end(self.out.file(TENSORBOARD), results)
        self.out.write_results(results)

    def _evaluate(self):
        """The trained model's test error and loss, and what it is.

        Raises:
            TrainingDiverged: the test loss or accuracy is not finite (the
                model's outputs overflow): the run did not produce a model.
        """
        test_loss, test_accuracy = self.model.evaluate(
            self.test_data, steps=self.test_steps, verbose=0
        )
        steps = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        for name, value in (("loss", test_loss), ("accuracy", test_accuracy)):
            check_finite(value, f"the test {name} is not finite", self.dir.path, steps,
                         epoch=self.state.epoch - 1)
        return {
            "trainable_parameters": count_trainable_parameters(self.model),
            "test_error": float(1.0 - test_accuracy),
            "test_loss": float(test_loss),
            "optimizer_steps": steps,
        }

    def _distributed(self, dataset_fn, split, **kwargs):
        """`runtime.distribute` of `dataset_fn(dataset, split, batch, ...)`."""
        return self.runtime.distribute(dataset_fn(
            self.config.dataset, split, self.recipe.batch_size, data_dir=self.config.data_dir,
            drop_remainder=self.runtime.drop_remainder, **self.config.reading(), **kwargs,
        ))

    def _build(self):
        """The compiled model, ready for this runtime."""
        config, info = self.config, self.info
        if self.model_builder is not None or user_models.kind(config.model) == "preset":
            model = (self.model_builder or build_model)(config, info, self.recipe)
        else:
            model, self.converted_sites = user_models.build(
                config, info["shape"], info["num_classes"], self.recipe.weight_decay)
            if self.converted_sites is not None and self.verbose:
                print(f"{config.model}: {self.converted_sites} activation site(s) of "
                      f"{config.convert_activation or 'relu'} converted to Drop-Activation "
                      f"(p={config.p}).", file=sys.stderr)
        compile_model(model, self.recipe, self._epoch_length(), self.config.momentum_convention)
        self.model = self.runtime.prepare(model)

    def _restore(self):
        """The state to start from, the newest usable backup's (its files
        written again: a kill may have missed them), and the run's objects."""
        config, runtime = self.config, self.runtime
        train_examples = config.train_examples(self.info)
        steps_per_epoch = self._epoch_length()
        self.backups = None if config.light else Backups(
            self.out.file(BACKUP), every=config.backup_every
        )
        restored = None
        if self.resumed and self.backups is not None:
            state_lib.build_metrics(self.model, self.info["shape"])
            restored = self.backups.restore(self.model, steps_per_epoch, self.recipe.epochs)
            if restored is None:
                self._check_nothing_to_lose()
        self.state = restored or TrainingState(steps_per_epoch=steps_per_epoch)

        def examples(first_step, stop_step):
            return runtime.examples(
                train_examples, self.recipe.batch_size, first_step, stop_step
            )

        self.counters = Counters(self.state, examples, self.started)
        self.progress = Progress(
            self.state, self.out, self.backups, self.counters, self.signals, self.dir.path
        )
        self.progress.set_model(self.model)
        if restored is not None:
            self.progress.write_epoch_files()

    def _epoch_length(self):
        """Optimizer steps per epoch of the run's data now (its training split,
        or its first --train-size examples); a backup holds the one it had."""
        return self.config.steps_per_epoch or self.runtime.steps_per_epoch(
            self.config.train_examples(self.info), self.recipe.batch_size
        )

    def _check_nothing_to_lose(self):
        """Lets a resume without any backup start at step 0 only if nothing is lost.

        That happens when a run is killed before its first backup. A run with a
        finished epoch (log.csv, checkpoint.keras) or model must not be trained
        again from scratch over it. Every process decides on the run directory
        (a worker that is not the chief writes a temporary copy holding only
        the backups), so that all stop together instead of some waiting in
        `fit` for a chief that has stopped.
        """
        foreign = self.backups.foreign_files()
        backups = self.dir.file(BACKUP)  # Every process checks the run directory itself.
        if foreign:
            raise RuntimeError(
                f"Cannot resume {self.dir.path!r}: {backups!r} holds no "
                f"backup this version can read ({', '.join(foreign)}). Nothing was "
                "changed; start a new run."
            )
        progress = self.dir.progress()
        if progress:
            raise RuntimeError(
                f"Cannot resume {self.dir.path!r}: {backups!r} holds no "
                f"backup to resume from, but the run has progress ({', '.join(progress)}) "
                "that training from step 0 would replace. Nothing was changed; put the "
                "backup folder back from a copy, or start a new run."
            )

    def _fit_epochs(self, callbacks, verbose):
        """`fit` of the interrupted epoch's remaining steps, then of the other epochs."""
        state = self.state
        if state.step > 0:
            self._fit(state.epoch + 1, state.steps_per_epoch - state.step, callbacks, verbose)
        if state.epoch < self.recipe.epochs:
            self._fit(self.recipe.epochs, state.steps_per_epoch, callbacks, verbose)

    def _fit(self, epochs, steps, callbacks, verbose):
        """`model.fit` up to epoch `epochs`, on the stream from the current step.

        `--batch-size` is the global batch: `runtime.distribute` gives each
        replica its share, each process reading its own shard of the examples.
        """
        train_data = self._distributed(
            pipelines.stream_fn,
            "train",
            start_step=self.state.optimizer_steps,
            augment=self.config.augmentation(self.info),
            shuffle=True,
            seed=self.config.seed,
            take=self.config.train_size,
        )
        self.model.fit(
            train_data,
            validation_data=self.test_data,
            initial_epoch=self.state.epoch,
            epochs=epochs,
            steps_per_epoch=steps,
            validation_steps=self.test_steps,
            shuffle=False,  # The pipeline shuffles.
            callbacks=callbacks,
            verbose=verbose,
        )

    def _results(self, **outcome):
        """The run's `Results`: the `outcome` (status, evaluation or
        divergence, optimizer steps), then the run's record.

        The counters are over all processes of the run; speed without each
        process' first (tracing) step and without validation (`Counters`).
        """
        totals = self.counters.totals(self.state.optimizer_steps)
        return Results(
            **outcome,
            config=self.config.to_dict(),
            recipe=dataclasses.asdict(self.recipe),
            epochs_completed=len(self.state.history),
            history=self.state.history,
            wall_seconds=totals["wall_seconds"],
            train_seconds=totals["train_seconds"],
            timed_examples=totals["timed_examples"],
            images_per_second=totals["images_per_second"],
            processes=totals["processes"],
            distribution=self.runtime.describe(),
            versions=versions(),
            converted_sites=self.converted_sites,
        )
