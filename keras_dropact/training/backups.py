"""`Backups`: the resume backups of a run, in the shape of orbax's CheckpointManager.

A backup is a `step-N.weights.h5` + `step-N.json` pair in one folder (N the
optimizer step, 9 digits). It is written weights first (temporary name,
rename), then its JSON (the same way): the run's `TrainingState` plus the
weights file's name and SHA-256. The JSON is the commit mark: a backup
without one does not exist. The latest `KEEP` backups are kept, older ones
deleted after a new one is complete. `restore` takes the newest backup that
passes every check and falls back to the one before it, naming what was
wrong.
"""

import os
import re
import stat
import sys
import warnings

from keras_dropact.training import faults
from keras_dropact.training import run_files
from keras_dropact.training.run_files import sha256
from keras_dropact.training.state import TrainingState
from keras_dropact.training.state import assign
from keras_dropact.training.state import check_values
from keras_dropact.training.state import seed_variables

# 2: the optimizer's state has no learning-rate variable (the rate is a
# `LearningRateSchedule`, `schedule.py`); 1 (before issue 25): it has one,
# right after the step counter. Both are read (`_load_weights`).
FORMAT = 2
READ_FORMATS = (1, 2)
KEEP = 2  # Backups kept: the latest and the one before it.
# A backup's JSON: the `TrainingState`, then these keys of its own.
ENVELOPE = {"format": (int,), "weights": (str,), "sha256": (str,)}
# A backup's two files: step-N.json and step-N.weights.h5 (N: 9 digits).
_NAME = re.compile(r"step-(\d{9,})(\.json|\.weights\.h5)")


def is_backup_file(name):
    """Whether `name` is the name of one of a backup's two files."""
    return _NAME.fullmatch(name) is not None


class ReplayInstead(ValueError):
    """A backup that is no point to resume from; the one before it is replayed."""


class Backups:
    """The backups in one folder (see the module docstring).

    Args:
        directory: the folder (created by the first `save`).
        every: optimizer steps between two mid-epoch backups.
    """

    def __init__(self, directory, every=50):
        self.directory = directory
        self.every = every

    def _path(self, step, suffix):
        return os.path.join(self.directory, f"step-{step:09d}{suffix}")

    def _files(self):
        """(step, suffix, name) of every backup file of the folder, and of
        every temporary file (suffix ".tmp") a killed writer left of one.

        Only regular files of exactly those names: nothing else in the
        folder is ever deleted.
        """
        if not os.path.isdir(self.directory):
            return []
        found = []
        for name in os.listdir(self.directory):
            target = run_files.temporary_target(name)
            match = _NAME.fullmatch(target or name)
            if match and stat.S_ISREG(os.lstat(os.path.join(self.directory, name)).st_mode):
                found.append((int(match[1]), ".tmp" if target else match[2], name))
        return found

    def marks(self):
        """(optimizer step, JSON path) of every backup, newest first."""
        marks = [
            (step, os.path.join(self.directory, name))
            for step, suffix, name in self._files() if suffix == ".json"
        ]
        return sorted(marks, reverse=True)

    def latest(self):
        """The optimizer step of the newest backup, or None."""
        marks = self.marks()
        return marks[0][0] if marks else None

    def foreign_files(self):
        """Files of the folder that are no backup of this format (e.g. Keras'
        BackupAndRestore files of an older keras-dropact)."""
        if not os.path.isdir(self.directory):
            return []
        own = {name for _, _, name in self._files()}
        return sorted(n for n in os.listdir(self.directory) if n not in own)

    def should_save(self, state):
        """True every `every` optimizer steps, except at an epoch's last step
        (the epoch's end saves one anyway)."""
        return state.optimizer_steps % self.every == 0 and state.step < state.steps_per_epoch

    def save(self, model, state):
        """Writes a backup of `model` and `state` (a `TrainingState`), then prunes.

        Raises:
            stops.CannotWrite: a file could not be written (a full disk);
                its temporary file is removed, the older backups are intact.
        """
        os.makedirs(self.directory, exist_ok=True)
        step = state.optimizer_steps
        weights = self._path(step, ".weights.h5")
        with run_files.atomic_write(weights, ".weights.h5") as temporary:
            model.save_weights(temporary)
            faults.point("backup_weights", step)
        run_files.write_json(self._path(step, ".json"), {
            **state.to_json(),
            "format": FORMAT,
            "weights": os.path.basename(weights),
            "sha256": sha256(weights),
        })
        self._prune()

    def _prune(self):
        """Deletes every file of the backups older than the latest `KEEP`."""
        files = self._files()
        kept = sorted((step for step, suffix, _ in files if suffix == ".json"), reverse=True)
        oldest_kept = kept[:KEEP][-1]
        old = [(suffix != ".json", name) for step, suffix, name in files if step < oldest_kept]
        # Marks go before their weights, so a mark never names a missing file.
        for _, name in sorted(old):
            os.remove(os.path.join(self.directory, name))

    def _state(self, step, mark, fits):
        """The checked `TrainingState` of backup `step` and its weights file;
        `fits` is `(steps_per_epoch, epochs)` of the run now, or None.

        Raises:
            OSError, ValueError: the backup is damaged or not of this format.
            ReplayInstead: it is no point to resume from.
        """
        saved = run_files.load_json(mark)
        if not isinstance(saved, dict):
            raise ValueError(f"a JSON object is needed, not {type(saved).__name__}")
        problem = run_files.record_problem({key: saved.get(key) for key in ENVELOPE}, ENVELOPE)
        if problem is not None or saved["format"] not in READ_FORMATS:
            raise ValueError(f"not a backup of format {' or '.join(map(str, READ_FORMATS))} "
                             f"({problem or saved['format']})")
        own = os.path.basename(self._path(step, ".weights.h5"))
        if saved["weights"] != own:  # Never a path: ../other_run/... is refused.
            raise ValueError(f"it names the weights file {saved['weights']!r}, not its own {own!r}")
        state = TrainingState.from_json({k: v for k, v in saved.items() if k not in ENVELOPE})
        if state.optimizer_steps != step:
            raise ValueError(f"it holds optimizer step {state.optimizer_steps}, not {step}")
        if fits is not None:
            state.check_fits(*fits)
        if state.before_epoch_end:
            raise ReplayInstead(
                f"it was taken after the last step of epoch {state.epoch}, before the "
                "epoch's end (an earlier version's backup at a signal); the backup "
                "before it is replayed instead"
            )
        weights = os.path.join(self.directory, own)
        if not os.path.isfile(weights):
            raise FileNotFoundError(f"its weights file {own} is missing")
        if sha256(weights) != saved["sha256"]:
            raise ValueError(f"{own} is damaged (SHA-256 mismatch)")
        return state, weights, saved["format"]

    def _load(self, model, step, mark, fits):
        """Loads backup `step` into `model`; returns its state (raises if unusable)."""
        state, weights, written_as = self._state(step, mark, fits)
        if state.metrics is not None:  # Added to the model's after the first step.
            check_values(model.metrics_variables, state.metrics, "metric")
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        _load_weights(model, weights, written_as)
        assign(seed_variables(model), state.seeds, "random-seed")
        return state

    def restore(self, model, steps_per_epoch=None, epochs=None):
        """Loads the newest usable backup into `model`; returns its `TrainingState`.

        A backup is usable when every check passes: its files (format, own
        weights file, SHA-256), its state (`TrainingState.from_json`: a
        position a run can be at), a run of `epochs` epochs of
        `steps_per_epoch` steps, when given (`TrainingState.check_fits`),
        and `model`'s variables (weights, random seeds, and metric totals:
        build the compiled metrics first, `state.build_metrics`). One that
        fails is skipped, named, and the one before it used.

        Returns None when the folder holds no backup to resume from (none,
        or only `ReplayInstead` ones: the run starts at step 0).

        Raises:
            RuntimeError: there are backups but none is usable (the message
                names each file and what is wrong with it).
        """
        fits = None if steps_per_epoch is None else (steps_per_epoch, epochs)
        problems, damaged = [], False
        for step, mark in self.marks():
            try:
                state = self._load(model, step, mark, fits)
            except Exception as error:  # noqa: BLE001 - any failure: try the older one.
                problems.append(f"{os.path.basename(mark)}: {error}")
                damaged = damaged or not isinstance(error, ReplayInstead)
                continue
            self._report(problems)
            return state
        if damaged:
            raise RuntimeError(
                f"No usable backup in {self.directory!r} ({'; '.join(problems)}). "
                "Nothing was changed; restore a backup from a copy, or start a new run."
            )
        self._report(problems)
        return None

    @staticmethod
    def _report(problems):
        for problem in problems:
            print(f"dropact: skipped a backup: {problem}", file=sys.stderr)


def _load_weights(model, weights, written_as):
    """`model.load_weights(weights)` for a backup of format `written_as`.

    A format-1 backup's optimizer state holds a learning-rate variable
    right after the step counter, which an optimizer whose rate is a
    schedule lacks (Keras would then skip the whole optimizer state with a
    warning): the model's weights are loaded by Keras, the optimizer's
    state from the file without that value.

    Raises:
        ValueError: the optimizer state does not fit the model's optimizer.
    """
    import h5py

    optimizer = model.optimizer
    with h5py.File(weights, "r") as f:
        saved = f.get("optimizer/vars")
        count = 0 if saved is None else len(saved)
        if written_as != 1 or optimizer is None or count != len(optimizer.variables) + 1:
            values = None
        else:
            values = [saved[str(i)][()] for i in range(count)]
    if values is None:
        model.load_weights(weights)
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(weights)
    variables = optimizer.variables
    counter = next(i for i, variable in enumerate(variables) if variable is optimizer.iterations)
    del values[counter + 1]  # The learning rate: the schedule gives it now.
    for variable, value in zip(variables, values):
        if tuple(variable.shape) != value.shape:
            raise ValueError(f"its optimizer state does not fit the model's ({variable.path}: "
                             f"shape {value.shape}, not {tuple(variable.shape)})")
        variable.assign(value)
