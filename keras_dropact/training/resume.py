"""What a run carries from one process to the next: exact resume, divergence, signals.

A run killed at any instruction and resumed performs the same optimizer
steps on the same batches, in the same order, with the same augmentation and
mask random streams, as the uninterrupted run (docs/runs.md):

- the data is `pipelines.stream_fn`'s stream, whose batch i depends only on
  (seed, i), so the resumed process starts it at the backup's step;
- a backup (`Backups`) holds the weights and optimizer state (one
  `.weights.h5`), and in a JSON file next to it the epoch and step, the
  state of every `SeedGenerator` (the Drop-Activation masks, which
  `save_weights` does not save), the epoch's running metric totals, the
  history of finished epochs and the run's time and example counters;
- `RunState`, the callback that writes the backups every `backup_every`
  optimizer steps and at every epoch end, restores the metric totals at the
  start of the resumed epoch, so even that epoch's logged averages match.

It also stops a run whose loss or weights stop being finite
(`TrainingDiverged`, before any backup of them is written) and one that
receives SIGINT or SIGTERM (`TrainingInterrupted`, after a backup of the
step it was at).
"""

import csv
import hashlib
import io
import json
import os
import signal
import sys
import threading
import time

import keras
import numpy as np

from keras_dropact.training import faults
from keras_dropact.training import run_dir as rd

FORMAT = 1
KEEP = 2  # Backups kept: the latest and the one before it.


class TrainingDiverged(RuntimeError):
    """The loss (or, at a backup, a weight) stopped being finite."""

    def __init__(self, run_dir, optimizer_step, epoch, what):
        self.run_dir = run_dir
        self.optimizer_step = optimizer_step
        self.epoch = epoch
        super().__init__(
            f"training diverged: {what} at optimizer step {optimizer_step} "
            f"(epoch {epoch}); stopped. {run_dir}/results.json says so and the "
            "last finite backup is kept. Start a new run with a lower --lr "
            "(or a longer warm-up)."
        )


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM stopped the run, after a backup of where it was."""

    def __init__(self, signum, run_dir, epoch, step, optimizer_steps, backed_up):
        self.signum = signum
        self.run_dir = run_dir
        name = signal.Signals(signum).name
        where = f"at epoch {epoch}, step {step} (optimizer step {optimizer_steps})"
        if backed_up:
            import shlex

            super().__init__(
                f"interrupted by {name} {where}; backup saved. Resume with: "
                f"dropact train --resume --run-dir {shlex.quote(run_dir)}"
            )
        else:
            super().__init__(
                f"interrupted by {name} {where}; this light run keeps no "
                "backup, so resuming restarts it."
            )


def seed_states(model):
    """The `SeedGenerator` state variables of `model`, in a fixed order.

    `model.variables` holds the weights plus the seed states; weights files
    hold only the weights, so the seed states travel in the backup's JSON.
    """
    weight_ids = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weight_ids]


def _values(variables):
    return [np.asarray(keras.ops.convert_to_numpy(v)).tolist() for v in variables]


def _assign(variables, values, what):
    if len(variables) != len(values):
        raise RuntimeError(
            f"The backup holds {len(values)} {what} values, the model "
            f"{len(variables)}: it belongs to another model."
        )
    for variable, value in zip(variables, values):
        variable.assign(np.asarray(value, dtype=variable.dtype))


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Backups:
    """The backups in one folder: `step-N.weights.h5` + `step-N.json` pairs.

    A backup is written weights first (temporary name, rename), then its
    JSON (the same way), which names the weights file and its SHA-256: the
    JSON is the commit mark, so a backup without one does not exist. The
    latest `KEEP` backups are kept, older ones deleted after a new one is
    complete. `restore` takes the newest backup that passes every check and
    falls back to the one before it, naming what was wrong.
    """

    def __init__(self, directory):
        self.directory = directory

    def _path(self, step, suffix):
        return os.path.join(self.directory, f"step-{step:09d}{suffix}")

    def marks(self):
        """(optimizer step, JSON path) of every backup, newest first."""
        if not os.path.isdir(self.directory):
            return []
        found = []
        for name in os.listdir(self.directory):
            if name.startswith("step-") and name.endswith(".json"):
                try:
                    found.append((int(name[5:-5]), os.path.join(self.directory, name)))
                except ValueError:
                    continue
        return sorted(found, reverse=True)

    def foreign_files(self):
        """Files of the folder that are no backup of this format (e.g. Keras'
        BackupAndRestore files of an older keras-dropact)."""
        if not os.path.isdir(self.directory):
            return []
        return sorted(n for n in os.listdir(self.directory) if not n.startswith("step-"))

    def save(self, model, state):
        os.makedirs(self.directory, exist_ok=True)
        step = state["optimizer_steps"]
        weights = self._path(step, ".weights.h5")
        temporary = self._path(step, f".tmp-{os.getpid()}.weights.h5")
        model.save_weights(temporary)
        rd._commit(temporary, weights)
        state = {
            **state,
            "format": FORMAT,
            "weights": os.path.basename(weights),
            "sha256": _sha256(weights),
        }
        rd.write_json(self._path(step, ".json"), state)
        self._prune(step)

    def _prune(self, newest):
        kept = [step for step, _ in self.marks()][:KEEP]
        oldest_kept = min(kept) if kept else newest
        for name in os.listdir(self.directory):
            if not name.startswith("step-"):
                continue
            try:
                step = int(name[5:14])
            except ValueError:
                continue
            # Marks go before their weights, so a mark never names a missing file.
            if step < oldest_kept and name.endswith(".json"):
                os.remove(os.path.join(self.directory, name))
        for name in os.listdir(self.directory):
            if name.startswith("step-") and name[5:14].isdigit() and int(name[5:14]) < oldest_kept:
                os.remove(os.path.join(self.directory, name))

    def restore(self, model):
        """Loads the newest usable backup into `model`; returns its state.

        Returns None when the folder holds no backup at all.

        Raises:
            RuntimeError: there are backups but none is usable (the message
                names each file and what is wrong with it).
        """
        problems = []
        for step, mark in self.marks():
            try:
                with open(mark) as f:
                    state = json.load(f)
                if state.get("format") != FORMAT or state.get("optimizer_steps") != step:
                    raise ValueError("not a backup of this format")
                weights = os.path.join(self.directory, state["weights"])
                if not os.path.isfile(weights):
                    raise FileNotFoundError(f"its weights file {state['weights']} is missing")
                if _sha256(weights) != state["sha256"]:
                    raise ValueError(f"{state['weights']} is damaged (SHA-256 mismatch)")
                if model.optimizer is not None and not model.optimizer.built:
                    model.optimizer.build(model.trainable_variables)
                model.load_weights(weights)
                _assign(seed_states(model), state["seeds"], "random-seed")
            except Exception as error:  # noqa: BLE001 - any failure: try the older one.
                problems.append(f"{os.path.basename(mark)}: {error}")
                continue
            for problem in problems:
                print(f"dropact: skipped a backup: {problem}", file=sys.stderr)
            return state
        if problems:
            raise RuntimeError(
                f"No usable backup in {self.directory!r} ({'; '.join(problems)}). "
                "Nothing was changed; restore a backup from a copy, or start a new run."
            )
        return None


def _row_values(logs):
    return {key: float(np.mean(keras.ops.convert_to_numpy(value))) for key, value in logs.items()}


def log_csv(history):
    """`log.csv`'s text: one row per finished epoch, as Keras' CSVLogger writes."""
    keys = sorted({key for row in history for key in row if key != "epoch"})
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["epoch", *keys], lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow(row)
    return out.getvalue()


class RunState(keras.callbacks.Callback):
    """Keeps the run's state, backs it up, and stops on divergence or a signal.

    Put it after every callback that writes into the epoch logs (they are
    recorded as the epoch's history row) and before the loggers that should
    see `epoch_seconds`.

    Args:
        run_dir: the directory written (`log.csv`, `checkpoint.keras`).
        steps_per_epoch: optimizer steps in one epoch.
        examples: `examples(first_step, stop_step)`, the training examples
            read in those global optimizer steps.
        backups: a `Backups`, or None for a light run (no backup, no
            checkpoint).
        backup_every: optimizer steps between mid-epoch backups.
        state: the restored backup's state, or None for a fresh start.
        started: `time.perf_counter()` when this process started the run.
    """

    def __init__(self, run_dir, steps_per_epoch, examples, backups, backup_every,
                 state=None, started=None):
        super().__init__()
        state = state or {}
        self.run_dir = run_dir
        self.steps_per_epoch = steps_per_epoch
        self.examples = examples
        self.backups = backups
        self.backup_every = backup_every
        self.epoch = state.get("epoch", 0)
        self.step = state.get("step", 0)
        self.optimizer_steps = state.get("optimizer_steps", 0)
        self.history = list(state.get("history", []))
        self.processes = state.get("processes", 0) + 1
        self.signal = None
        self._metrics = state.get("metrics") if self.step else None
        self._epoch_seconds_before = state.get("epoch_seconds", 0.0) if self.step else 0.0
        self._wall_before = state.get("wall_seconds", 0.0)
        self._timed_seconds = state.get("train_seconds", 0.0)
        self._timed_examples = state.get("timed_examples", 0)
        self._started = time.perf_counter() if started is None else started
        self._traced = False  # True once this process has run its first step.
        self._timing_since = None  # (perf_counter, optimizer step) of the open interval.
        self._epoch_start = None
        self._epoch_train_seconds = None

    # Counters -------------------------------------------------------------

    def _open_interval(self):
        if self._traced and self._timing_since is None:
            self._timing_since = (time.perf_counter(), self.optimizer_steps)

    def _close_interval(self):
        if self._timing_since is not None:
            since, first = self._timing_since
            self._timed_seconds += time.perf_counter() - since
            self._timed_examples += self.examples(first, self.optimizer_steps)
            self._timing_since = None

    def counters(self):
        """Time and speed over all processes of the run, up to now.

        `train_seconds` and `timed_examples` cover the training steps after
        each process' first one (which traces and compiles), without
        validation; `wall_seconds` adds up each process' time from its
        start to its last backup (the last process: to now).
        """
        was_open = self._timing_since is not None
        self._close_interval()
        if was_open:
            self._open_interval()
        seconds, examples = self._timed_seconds, self._timed_examples
        return {
            "wall_seconds": self._wall_before + time.perf_counter() - self._started,
            "train_seconds": seconds,
            "timed_examples": examples,
            "images_per_second": examples / seconds if seconds > 0 else None,
            "processes": self.processes,
        }

    # Backups ---------------------------------------------------------------

    def _epoch_seconds_so_far(self):
        if self._epoch_start is None:
            return self._epoch_seconds_before
        return self._epoch_seconds_before + time.perf_counter() - self._epoch_start

    def _check_weights(self):
        for weight in self.model.weights:
            if not np.all(np.isfinite(keras.ops.convert_to_numpy(weight))):
                raise TrainingDiverged(
                    self.run_dir, self.optimizer_steps, self.epoch,
                    f"weight {weight.path} is not finite",
                )

    def backup(self):
        """Writes a backup of the run as it is now (between two steps)."""
        if self.backups is None:
            return
        self._check_weights()
        mid_epoch = self.step > 0
        counters = self.counters()
        self.backups.save(self.model, {
            "epoch": self.epoch,
            "step": self.step,
            "optimizer_steps": self.optimizer_steps,
            "steps_per_epoch": self.steps_per_epoch,
            "history": self.history,
            "metrics": _values(self.model.metrics_variables) if mid_epoch else None,
            "epoch_seconds": self._epoch_seconds_so_far() if mid_epoch else 0.0,
            "seeds": _values(seed_states(self.model)),
            "wall_seconds": counters["wall_seconds"],
            "train_seconds": counters["train_seconds"],
            "timed_examples": counters["timed_examples"],
            "processes": self.processes,
        })

    def write_epoch_files(self, checkpoint=True):
        """log.csv from the history and, with backups, checkpoint.keras."""
        if checkpoint and self.backups is not None:
            rd.save_model(self.model, os.path.join(self.run_dir, rd.CHECKPOINT))
            faults.point("log_row", self.epoch - 1)
        rd.write_text(os.path.join(self.run_dir, rd.LOG), log_csv(self.history))

    def _interrupt(self):
        raise TrainingInterrupted(
            self.signal, self.run_dir, self.epoch, self.step, self.optimizer_steps,
            backed_up=self.backups is not None,
        )

    # Keras hooks -----------------------------------------------------------

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self._epoch_start = time.perf_counter()
        self._epoch_train_seconds = None
        self._open_interval()

    def _add_saved_metrics(self):
        """Adds the metric totals of the interrupted process' steps of this epoch.

        Keras builds the compiled metrics in the first step, so they are
        added after it: total = saved + first step, exactly the sum the
        uninterrupted run formed (Keras' reducing metrics keep sums).
        """
        variables = self.model.metrics_variables
        if len(variables) != len(self._metrics):
            raise RuntimeError(
                f"The backup holds {len(self._metrics)} metric values, the "
                f"model {len(variables)}: it belongs to another model."
            )
        for variable, saved in zip(variables, self._metrics):
            current = keras.ops.convert_to_numpy(variable)
            variable.assign(np.asarray(saved, dtype=variable.dtype) + current)
        self._metrics = None

    def on_train_batch_end(self, batch, logs=None):
        if self._metrics is not None:
            self._add_saved_metrics()
        self.step += 1
        self.optimizer_steps += 1
        loss = (logs or {}).get("loss")
        if loss is not None and not np.all(np.isfinite(keras.ops.convert_to_numpy(loss))):
            raise TrainingDiverged(
                self.run_dir, self.optimizer_steps, self.epoch, "the loss is not finite"
            )
        if not self._traced:
            self._traced = True
            self._open_interval()
        faults.point("step", self.optimizer_steps)
        if self.signal is not None:
            self.backup()
            self._interrupt()
        if (
            self.backups is not None
            and self.optimizer_steps % self.backup_every == 0
            and self.step < self.steps_per_epoch
        ):
            self.backup()

    def on_test_begin(self, logs=None):
        self._close_interval()
        if self._epoch_train_seconds is None and self._epoch_start is not None:
            self._epoch_train_seconds = self._epoch_seconds_so_far()

    def on_epoch_end(self, epoch, logs=None):
        self._close_interval()
        if logs is None:
            logs = {}
        if self._epoch_train_seconds is None:
            self._epoch_train_seconds = self._epoch_seconds_so_far()
        logs["epoch_seconds"] = self._epoch_train_seconds
        row = _row_values(logs)
        self.history.append({"epoch": epoch, **row})
        self.epoch, self.step = epoch + 1, 0
        self._epoch_seconds_before, self._epoch_start = 0.0, None
        self.backup()
        faults.point("epoch_backup", epoch)
        self.write_epoch_files()
        if self.signal is not None:
            self._interrupt()


class StopSignals:
    """Turns SIGINT and SIGTERM into a backup and `TrainingInterrupted`.

    While active (a `with` block, main thread only), the first SIGINT or
    SIGTERM sets `run_state.signal`; `RunState` then backs up at the end of
    the current step (or epoch) and raises. A second signal gets the
    previous handler (Ctrl-C twice: KeyboardInterrupt at once).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, run_state):
        self.run_state = run_state
        self._previous = {}

    def _handle(self, signum, frame):
        if self.run_state.signal is not None:
            previous = self._previous.get(signum, signal.SIG_DFL)
            signal.signal(signum, previous)
            signal.raise_signal(signum)
            return
        self.run_state.signal = signum
        print(
            f"\ndropact train: {signal.Signals(signum).name} received; saving a "
            "backup after this step.", file=sys.stderr, flush=True,
        )

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}
        return False
