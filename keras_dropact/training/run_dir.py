"""The run directory: what a training run writes, and the rules protecting it.

    RUN_DIR/
      config.json        the full TrainConfig
      backup/            keras.callbacks.BackupAndRestore state (resume)
      checkpoint.keras   the model at the end of the last finished epoch
      log.csv            one row per finished epoch
      tensorboard/       TensorBoard logs
      model.keras        the final model
      results.json       configuration, test error, history, speed, versions

A run directory that exists is never reused unless the caller asks to
resume it; nothing in it is deleted.
"""

import json
import os
import time

CONFIG = "config.json"
BACKUP = "backup"
CHECKPOINT = "checkpoint.keras"
LOG = "log.csv"
TENSORBOARD = "tensorboard"
MODEL = "model.keras"
RESULTS = "results.json"


def write_json(path, value):
    """Writes `value` as JSON to `path` through a temporary file and a rename.

    A process killed at any instruction leaves either the old file or the
    new one, never a half-written one.
    """
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w") as f:
        json.dump(value, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


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


def check_backup(run_dir):
    """Raises a clear error if the run's resume backup exists but is unusable.

    `keras.callbacks.BackupAndRestore` keeps the latest backup and the one
    before it (`.bkp`) and falls back to the older one when the newer is
    unreadable; this check fails only when no usable pair is left, instead of
    letting training start over from scratch or die in h5py.
    """
    import h5py

    backup = os.path.join(run_dir, BACKUP)
    weights = os.path.join(backup, "latest.weights.h5")
    metadata = os.path.join(backup, "training_metadata.json")
    if not os.path.exists(weights):
        return
    problems = []
    for suffix in ("", ".bkp"):
        try:
            with h5py.File(weights + suffix, "r"):
                pass
            if os.path.exists(metadata + suffix):
                with open(metadata + suffix) as f:
                    json.load(f)
            return
        except (OSError, ValueError) as error:
            problems.append(f"{os.path.basename(weights + suffix)}: {error}")
    raise RuntimeError(
        f"Cannot resume {run_dir!r}: the backup in {backup!r} is corrupt "
        f"({'; '.join(problems)}). Delete {backup!r} to restart the run from "
        "epoch 0, or start a new run."
    )
