"""`Progress`: the Keras callback that follows a run through `model.fit`."""

import dataclasses

import keras
import numpy as np

from keras_dropact.training import faults
from keras_dropact.training import state as state_lib
from keras_dropact.training.stops import check_finite
from keras_dropact.training.stops import raise_if_signalled


def _row_values(logs):
    return {key: float(np.mean(keras.ops.convert_to_numpy(value))) for key, value in logs.items()}


class Progress(keras.callbacks.Callback):
    """Moves the run's `TrainingState` along `fit` and acts at its steps.

    After every optimizer step: counts it, stops on a non-finite loss,
    backs up when `backups.should_save`, and on a signal backs up and stops
    (at an epoch's last step: at the epoch's end). At every epoch end:
    records the epoch's logs as a history row (with `epoch_seconds` and
    `compile_seconds`, `Counters.epoch_ended`), stops on a non-finite
    validation value or weight, backs up, writes `log.csv` and
    `checkpoint.keras`, and stops after a signal.
    The first step of a resumed epoch adds the interrupted process' metric
    totals to the new ones, so the epoch's logged averages are those of an
    uninterrupted run.

    Put it after every callback that writes into the epoch logs (they are
    recorded) and before the loggers that should see `epoch_seconds`. The
    state's position and history are kept current; its counters and model
    values are taken when a backup is (`snapshot`).

    Args:
        state: the run's `TrainingState`, updated in place.
        out: the `RunDir` this process writes.
        run_path: the run directory, named in messages (on a worker that is
            not the chief, `out` is a temporary directory).
        backups: a `Backups`, or None for a light run (no backup, no
            checkpoint).
        counters: the run's `Counters`.
        signals: the run's `interrupts.StopSignals`.
    """

    def __init__(self, state, out, backups, counters, signals, run_path):
        super().__init__()
        self.state = state
        self.out = out
        self.run_path = run_path
        self.backups = backups
        self.counters = counters
        self.signals = signals
        self._saved_metrics = state.metrics if state.mid_epoch else None

    def snapshot(self):
        """The state to back up now (between two steps), model values included."""
        s = self.state
        totals = self.counters.totals(s.optimizer_steps)
        return dataclasses.replace(
            s,
            metrics=state_lib.values(self.model.metrics_variables) if s.mid_epoch else None,
            epoch_seconds=self.counters.epoch_seconds() if s.mid_epoch else 0.0,
            seeds=state_lib.values(state_lib.seed_variables(self.model)),
            wall_seconds=totals["wall_seconds"],
            train_seconds=totals["train_seconds"],
            timed_examples=totals["timed_examples"],
            processes=totals["processes"],
        )

    def backup(self):
        """Writes a backup of the run as it is now, unless a weight is not finite."""
        if self.backups is not None:
            self._check_weights(self.state.epoch)
            self.backups.save(self.model, self.snapshot())

    def _check_weights(self, epoch):
        for weight in self.model.weights:
            self._check(keras.ops.convert_to_numpy(weight), f"weight {weight.path} is not finite",
                        epoch)

    def write_epoch_files(self):
        """log.csv and, with backups, checkpoint.keras (at an epoch's end only)."""
        at_epoch_end = self.state.epoch > 0 and not self.state.mid_epoch
        self.out.write_epoch_files(
            self.model, self.state.history, checkpoint=self.backups is not None and at_epoch_end,
        )

    def stop_if_signalled(self):
        """Raises `TrainingInterrupted` once a signal has arrived."""
        raise_if_signalled(self.signals, self.run_path, self.state,
                           backed_up=self.backups is not None)

    def _check(self, value, what, epoch):
        check_finite(value, what, self.run_path, self.state.optimizer_steps, epoch)

    # Keras hooks -----------------------------------------------------------

    def on_epoch_begin(self, epoch, logs=None):
        self.state.epoch = epoch
        self.counters.epoch_began(self.state.optimizer_steps)

    def on_train_batch_end(self, batch, logs=None):
        if self._saved_metrics is not None:
            # Keras builds the compiled metrics in the first step, so the
            # saved totals are added after it: saved + first step, exactly
            # the sum the uninterrupted run formed.
            state_lib.assign(self.model.metrics_variables, self._saved_metrics, "metric", add=True)
            self._saved_metrics = None
        s = self.state
        s.step += 1
        s.optimizer_steps += 1
        loss = (logs or {}).get("loss")
        if loss is not None:
            self._check(keras.ops.convert_to_numpy(loss), "the loss is not finite", s.epoch)
        self.counters.step_done(s.optimizer_steps)
        faults.point("step", s.optimizer_steps)
        # At an epoch's last step a signal waits for the epoch's end (its
        # validation, history row and backup): a backup never holds an
        # epoch whose steps are done but whose end is not.
        if self.signals.received is not None and s.step < s.steps_per_epoch:
            self.backup()
            self.stop_if_signalled()
        if self.backups is not None and self.backups.should_save(s):
            self.backup()

    def on_test_begin(self, logs=None):
        self.counters.validation_began(self.state.optimizer_steps)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            logs = {}
        logs["epoch_seconds"], logs["compile_seconds"] = self.counters.epoch_ended(
            self.state.optimizer_steps)
        self.state.history.append({"epoch": epoch, **_row_values(logs)})
        # A divergence found here belongs to this epoch: checked before the
        # position moves on. Weights first: they explain a NaN evaluation.
        if self.backups is not None:
            self._check_weights(epoch)
        for key, value in logs.items():
            if key.startswith("val_"):
                self._check(keras.ops.convert_to_numpy(value), f"the test {key[4:]} is not finite",
                            epoch)
        self.state.epoch, self.state.step = epoch + 1, 0
        if self.backups is not None:
            self.backups.save(self.model, self.snapshot())
        faults.point("epoch_backup", epoch)
        self.write_epoch_files()
        self.stop_if_signalled()
