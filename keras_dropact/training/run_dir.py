"""The run directory: what a training run writes, and the rules protecting it.

    RUN_DIR/
      config.json        the full TrainConfig
      run.lock           held by the one process training the run
      backup/            resume state: step-N.weights.h5 + step-N.json, the
                         latest two (`training/resume.py`)
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
0-byte or half-written one. See docs/runs.md.
"""

import contextlib
import json
import math
import os
import time

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


def _commit(temporary, path):
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
    _commit(temporary, path)


def write_text(path, text):
    """Writes `text` to `path` through a temporary file and a rename."""
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w", newline="") as f:
        f.write(text)
    _commit(temporary, path)


def save_model(model, path, before_rename=None):
    """`model.save(path)` through a temporary `.keras` file and a rename.

    `before_rename()`, if given, runs between the two (the fault-injection
    tests kill the process there).
    """
    temporary = path[: -len(".keras")] + f".tmp-{os.getpid()}.keras"
    model.save(temporary)
    if before_rename is not None:
        before_rename()
    _commit(temporary, path)


def read_results(run_dir):
    """The run's `results.json` as a dict, or None when it has none.

    Raises:
        RuntimeError: the file exists but cannot be read as JSON.
    """
    path = os.path.join(run_dir, RESULTS)
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


@contextlib.contextmanager
def locked(run_dir):
    """Holds `RUN_DIR/run.lock` (an OS file lock) for the `with` block.

    One process per run directory: a second `train` or `--resume` of a run
    that is being trained fails at once instead of both writing the same
    files. The OS releases the lock when its holder dies, even by SIGKILL.

    Raises:
        RuntimeError: another process holds the lock.
    """
    from keras_dropact.extras import require

    require("train", "filelock", feature="the run directory lock")
    import filelock

    lock = filelock.FileLock(os.path.join(run_dir, LOCK), timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise RuntimeError(
            f"Run directory {run_dir!r} is in use by another dropact process "
            f"(it holds {LOCK}). Wait for that run to end, or stop it with "
            "SIGINT or SIGTERM (it saves a backup), then resume it."
        ) from None
    try:
        yield
    finally:
        lock.release()


def remove_temporaries(run_dir):
    """Deletes the temporary files a killed process left (`*.tmp-PID*`).

    Call it only while holding the run's lock: no live writer owns them.
    """
    for folder in (run_dir, os.path.join(run_dir, BACKUP)):
        if os.path.isdir(folder):
            for name in os.listdir(folder):
                if ".tmp-" in name:
                    os.remove(os.path.join(folder, name))


def default_run_dir(config):
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return os.path.join("runs", f"{config.model}-{config.dataset}-{config.activation}-{stamp}")


def open_run_dir(run_dir, resume):
    """Creates `run_dir` for a new run, or checks it can be resumed.

    Raises:
        FileExistsError: a new run would reuse an existing directory.
        FileNotFoundError: `resume` names a directory with no run in it.
    """
    config_path = os.path.join(run_dir, CONFIG)
    if resume:
        if not os.path.isfile(config_path):
            raise FileNotFoundError(
                f"Cannot resume {run_dir!r}: it holds no {CONFIG}, so no run "
                "was started there. Start a new run without --resume."
            )
        return
    if os.path.exists(run_dir):
        raise FileExistsError(
            f"Run directory {run_dir!r} already exists; refusing to overwrite "
            "it. Pass --resume to continue that run, or choose another --run-dir."
        )
    os.makedirs(run_dir)
