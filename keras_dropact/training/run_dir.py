"""The run directory: what a training run writes, and the rules protecting it.

    RUN_DIR/
      config.json        the full TrainConfig
      run.lock           held by the one process training the run
      backup/            resume state: step-N.weights.h5 + step-N.json, the
                         latest two (`training/backups.py`)
      checkpoint.keras   the model at the end of the last finished epoch
      log.csv            one row per finished epoch
      tensorboard/       TensorBoard logs
      model.keras        the final model
      results.json       status, configuration, test error, history, speed,
                         versions

A run directory that exists is never reused unless the caller asks to
resume it; nothing in it is deleted (old backups apart). Every file but the
TensorBoard logs is written to a temporary name and renamed, so a process
killed at any instruction leaves the old file or the new one, never a
0-byte or half-written one. See docs/guides/training.md.
"""

import contextlib
import csv
import io
import json
import math
import os
import time

from keras_dropact.training import faults

CONFIG = "config.json"
BACKUP = "backup"
CHECKPOINT = "checkpoint.keras"
LOG = "log.csv"
TENSORBOARD = "tensorboard"
MODEL = "model.keras"
RESULTS = "results.json"
LOCK = "run.lock"


def _strict(value):
    """`value` with every non-finite float replaced by None (JSON null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(item) for item in value]
    return value


def commit(temporary, path):
    """fsyncs `temporary`, then renames it to `path` (atomic on POSIX)."""
    with open(temporary, "rb") as f:
        os.fsync(f.fileno())
    os.replace(temporary, path)


def write_json(path, value):
    """Writes `value` as JSON to `path` through a temporary file and a rename.

    A process killed at any instruction leaves either the old file or the
    new one, never a half-written one. The JSON is strict: NaN and infinite
    floats are written as null (Python's json would write bare `NaN`).
    """
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w") as f:
        json.dump(_strict(value), f, indent=2, allow_nan=False)
    commit(temporary, path)


def write_text(path, text):
    """Writes `text` to `path` through a temporary file and a rename."""
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w", newline="") as f:
        f.write(text)
    commit(temporary, path)


def save_model(model, path, before_rename=None):
    """`model.save(path)` through a temporary `.keras` file and a rename.

    `before_rename()`, if given, runs between the two (the fault-injection
    tests kill the process there).
    """
    temporary = path[: -len(".keras")] + f".tmp-{os.getpid()}.keras"
    model.save(temporary)
    if before_rename is not None:
        before_rename()
    commit(temporary, path)


def log_csv(history):
    """`log.csv`'s text: one row per finished epoch, as Keras' CSVLogger writes."""
    keys = sorted({key for row in history for key in row if key != "epoch"})
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["epoch", *keys], lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow(row)
    return out.getvalue()


def default_path(config):
    """runs/MODEL-DATASET-ACTIVATION-TIME."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return os.path.join("runs", f"{config.model}-{config.dataset}-{config.activation}-{stamp}")


class RunDir:
    """One run directory: its paths, and every read and write of its files.

    Reads name the file they could not use; writes are atomic (see the
    module docstring).
    """

    def __init__(self, path):
        self.path = path

    def __str__(self):
        return self.path

    def file(self, name):
        """The path of `name` (one of this module's names) in the directory."""
        return os.path.join(self.path, name)

    # Creating, resuming, locking -------------------------------------------

    def create(self):
        """Creates the directory of a new run.

        Raises:
            FileExistsError: it exists (a new run never reuses one).
        """
        if os.path.exists(self.path):
            raise FileExistsError(
                f"Run directory {self.path!r} already exists; refusing to overwrite "
                "it. Pass --resume to continue that run, or choose another --run-dir."
            )
        os.makedirs(self.path)

    def check_resumable(self):
        """Raises FileNotFoundError unless a run was started here (config.json)."""
        if not os.path.isfile(self.file(CONFIG)):
            raise FileNotFoundError(
                f"Cannot resume {self.path!r}: it holds no {CONFIG}, so no run "
                "was started there. Start a new run without --resume."
            )

    @contextlib.contextmanager
    def lock(self):
        """Holds `run.lock` (an OS file lock) for the `with` block.

        One process per run directory: a second `train` or `--resume` of a
        run that is being trained fails at once instead of both writing the
        same files. The OS releases the lock when its holder dies, even by
        SIGKILL.

        Raises:
            RuntimeError: another process holds the lock.
        """
        from keras_dropact.extras import require

        require("train", "filelock", feature="the run directory lock")
        import filelock

        lock = filelock.FileLock(self.file(LOCK), timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise RuntimeError(
                f"Run directory {self.path!r} is in use by another dropact process "
                f"(it holds {LOCK}). Wait for that run to end, or stop it with "
                "SIGINT or SIGTERM (it saves a backup), then resume it."
            ) from None
        try:
            yield
        finally:
            lock.release()

    def remove_temporaries(self):
        """Deletes the temporary files a killed process left (`*.tmp-PID*`).

        Call it only while holding the run's lock: no live writer owns them.
        """
        for folder in (self.path, self.file(BACKUP)):
            if os.path.isdir(folder):
                for name in os.listdir(folder):
                    if ".tmp-" in name:
                        os.remove(os.path.join(folder, name))

    def progress(self):
        """The files of finished epochs or of a finished model that exist."""
        return [name for name in (LOG, CHECKPOINT, MODEL) if os.path.exists(self.file(name))]

    # The files -------------------------------------------------------------

    def read_config(self):
        """The run's `TrainConfig`, with `run_dir` set to this directory.

        Raises:
            FileNotFoundError: no run was started here.
            RuntimeError: config.json cannot be read as a configuration.
        """
        from keras_dropact.training.config import TrainConfig

        self.check_resumable()
        path = self.file(CONFIG)
        try:
            config = TrainConfig.load(path)
        except (OSError, ValueError, TypeError) as error:
            raise RuntimeError(
                f"Cannot resume {self.path!r}: {path!r} is unreadable ({error})."
            ) from error
        config.run_dir = self.path
        return config

    def write_config(self, config):
        config.save(self.file(CONFIG))

    def read_results(self):
        """The run's `results.json` as a dict, or None when it has none.

        Raises:
            RuntimeError: the file exists but cannot be read as JSON.
        """
        path = self.file(RESULTS)
        if not os.path.exists(path):
            return None
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError) as error:
            raise RuntimeError(
                f"{path!r} is unreadable ({error}); it is left as it is. Move it "
                "away to let --resume evaluate the run and write it again."
            ) from error

    def write_results(self, results):
        write_json(self.file(RESULTS), results)

    def write_epoch_files(self, model, history, checkpoint=True):
        """`log.csv` from `history` and, with `checkpoint`, `checkpoint.keras`."""
        if checkpoint:
            save_model(model, self.file(CHECKPOINT))
            faults.point("log_row", history[-1]["epoch"])
        write_text(self.file(LOG), log_csv(history))

    def save_model(self, model):
        """The final `model.keras`."""
        save_model(model, self.file(MODEL), before_rename=lambda: faults.point("final_save"))
