"""The run directory: what a training run writes, and the rules protecting it.

    RUN_DIR/
      dataset.json       the data the run started on: classes, shape, split
                         sizes (`training/run_dataset.py`)
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
0-byte or half-written one; a write that fails (a full disk) removes its
temporary file and raises `stops.CannotWrite`. What is read back is
checked, never trusted: config.json and results.json against their
schemas (`read_config`, `read_results`), the backups by `Backups`; a file
that fails is one line naming it and the problem. See docs/guides/training.md.
"""

import contextlib
import csv
import io
import json
import math
import os
import shutil
import time
import types
import typing

from keras_dropact.training import faults
from keras_dropact.training.stops import CannotWrite

CONFIG = "config.json"
BACKUP = "backup"
CHECKPOINT = "checkpoint.keras"
LOG = "log.csv"
TENSORBOARD = "tensorboard"
MODEL = "model.keras"
RESULTS = "results.json"
LOCK = "run.lock"

# results.json (`Run._results`): the keys of every run, then those of each
# status, each with the kinds of value it holds (`record_problem`).
RESULTS_FIELDS = {
    "status": (str,),
    "config": (dict,),
    "recipe": (dict,),
    "epochs_completed": (int,),
    "optimizer_steps": (int,),
    "history": (list,),
    "wall_seconds": (float,),
    "train_seconds": (float,),
    "timed_examples": (int,),
    "images_per_second": (float, None),
    "processes": (int,),
    "distribution": (dict,),
    "versions": (dict,),
}
RESULTS_BY_STATUS = {
    # Finished runs of earlier versions could record a non-finite test loss
    # (written as null); since issue 20 such a run is "diverged".
    "finished": {"test_error": (float,), "test_loss": (float, None),
                 "trainable_parameters": (int,)},
    "diverged": {"test_error": (None,), "test_loss": (None,), "diverged_at_step": (int,),
                 "diverged_in_epoch": (int,), "message": (str,)},
}
# Keys runs of earlier versions did not write: "distribution" came with the
# JAX backend. Nothing stands in for it.
RESULTS_ADDED_KEYS = ("distribution",)


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


@contextlib.contextmanager
def atomic_write(path, extension=""):
    """The temporary file through which `path` is written, for a `with` block.

    The block writes the temporary file (`extension`, e.g. ".keras", ends
    its name, as Keras' writers need); at its end the file is fsynced and
    renamed to `path`. A process killed at any instruction leaves the old
    file or the new one, never a half-written one. When writing fails (an
    OSError: a full disk, a quota, permissions) the temporary file is
    removed and `stops.CannotWrite` names `path`.
    """
    path = os.fspath(path)
    temporary = f"{path[: len(path) - len(extension)]}.tmp-{os.getpid()}{extension}"
    try:
        yield temporary
        commit(temporary, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        if isinstance(error, OSError) and not isinstance(error, CannotWrite):
            raise CannotWrite(path, error) from error
        raise


def write_json(path, value):
    """Writes `value` as JSON to `path` (`atomic_write`).

    The JSON is strict: NaN and infinite floats are written as null
    (Python's json would write bare `NaN`).
    """
    with atomic_write(path) as temporary, open(temporary, "w") as f:
        json.dump(_strict(value), f, indent=2, allow_nan=False)


def write_text(path, text):
    """Writes `text` to `path` (`atomic_write`)."""
    with atomic_write(path) as temporary, open(temporary, "w", newline="") as f:
        f.write(text)


def save_model(model, path, before_rename=None):
    """`model.save(path)` through a temporary `.keras` file (`atomic_write`).

    `before_rename()`, if given, runs between the two (the fault-injection
    tests kill the process there).
    """
    with atomic_write(path, ".keras") as temporary:
        model.save(temporary)
        if before_rename is not None:
            before_rename()


def load_json(path):
    """The strict JSON in `path` (NaN and Infinity tokens are refused).

    Raises:
        OSError: the file cannot be read.
        ValueError: it is not strict JSON.
    """
    def refuse(token):
        raise ValueError(f"the non-standard token {token}")

    with open(path) as f:
        return json.load(f, parse_constant=refuse)


def read_json(path, what, fix):
    """`load_json(path)`, else one RuntimeError line naming the file.

    `what` is what the file should hold ("a run configuration"); `fix` what
    to do when it does not.
    """
    try:
        return load_json(path)
    except OSError as error:
        raise RuntimeError(f"{path!r} is unreadable ({error.strerror}); {fix}") from None
    except ValueError as error:
        raise RuntimeError(
            f"{path!r} is not valid JSON ({error}), so not {what}; it is left as it is. {fix}"
        ) from None


def _has_kind(value, kind):
    """`value` is a JSON value of `kind`: None, bool, int, float (any number), str, list, dict."""
    if kind is None:
        return value is None
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def json_fields(cls):
    """Each field of the dataclass `cls` with the kinds of JSON value it
    holds (for `record_problem`), from its annotation."""
    fields = {}
    for name, annotation in typing.get_type_hints(cls).items():
        options = (typing.get_args(annotation)
                   if isinstance(annotation, types.UnionType) else (annotation,))
        fields[name] = tuple(
            None if option is type(None) else typing.get_origin(option) or option
            for option in options
        )
    return fields


def record_problem(values, fields, optional=()):
    """The first way `values` is not a record of `fields`, or None.

    `fields` maps each key to the kinds its value may have (see
    `_has_kind`); every key must be there, but those in `optional`, and no
    other.
    """
    if not isinstance(values, dict):
        return f"a JSON object is needed, not {type(values).__name__}"
    missing = sorted(set(fields) - set(values) - set(optional))
    unknown = sorted(set(values) - set(fields))
    if missing or unknown:
        return ", ".join(f"{what} keys {keys}" for what, keys in
                         (("missing", missing), ("unknown", unknown)) if keys)
    for key, kinds in fields.items():
        if key in values and not any(_has_kind(values[key], kind) for kind in kinds):
            return f"{key!r} is {values[key]!r}"
    return None


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

    def discard(self):
        """Removes the directory of a new run that could not be started.

        Only for the directory `create` made, before training: it holds
        nothing but the files the start wrote.
        """
        shutil.rmtree(self.path, ignore_errors=True)

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
            RuntimeError: another process holds the lock, or run.lock is
                not a file.
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
        except OSError as error:  # e.g. a folder in its place.
            raise RuntimeError(
                f"{self.file(LOCK)!r} is not a file the run can lock ({error.strerror}); "
                "nothing was changed. Remove it (a lock file holds nothing) and try again."
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
        """The run's `TrainConfig` from config.json, checked; `run_dir` is
        set to this directory.

        Every field must be there with a value of its type (see
        `config.ADDED_KEYS` for those older versions did not write), and no
        other; the values are checked as flags are. Nothing is filled in.

        Raises:
            FileNotFoundError: no run was started here.
            RuntimeError: config.json is unreadable or not a configuration
                (one line naming it and the problem).
        """
        from keras_dropact.training import config as config_lib

        self.check_resumable()
        path = self.file(CONFIG)
        fix = "Put back the run's own copy, or start a new run."
        values = read_json(path, "a run configuration", fix)
        fields = json_fields(config_lib.TrainConfig)
        problem = record_problem(values, fields, optional=config_lib.ADDED_KEYS)
        if problem is None:
            try:
                config = config_lib.TrainConfig(**{**config_lib.ADDED_KEYS, **values})
            except ValueError as error:
                problem = str(error)
        if problem is not None:
            raise RuntimeError(
                f"{path!r} is not a run configuration ({problem}); it is left as it is. {fix}"
            )
        config.run_dir = self.path
        return config

    def write_config(self, config):
        config.save(self.file(CONFIG))

    def read_results(self):
        """The run's `results.json`, checked (`RESULTS_FIELDS`), or None when
        it has none.

        Raises:
            RuntimeError: the file is unreadable or not a run's results (one
                line naming it and the problem); it is left as it is.
        """
        path = self.file(RESULTS)
        if not os.path.exists(path):
            return None
        fix = "Move it away to let --resume evaluate the run and write it again."
        results = read_json(path, "a run's results", fix)
        status = results.get("status") if isinstance(results, dict) else None
        if isinstance(results, dict) and "status" in results and status not in tuple(
                RESULTS_BY_STATUS):
            problem = f"'status' is {status!r}, not one of {', '.join(RESULTS_BY_STATUS)}"
        else:
            fields = {**RESULTS_FIELDS, **RESULTS_BY_STATUS.get(status, {})}
            problem = record_problem(results, fields, optional=RESULTS_ADDED_KEYS)
        if problem is not None:
            raise RuntimeError(
                f"{path!r} is not a run's results ({problem}); it is left as it is. {fix}"
            )
        return results

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
