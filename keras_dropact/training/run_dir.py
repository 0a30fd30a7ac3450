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
      tensorboard/       TensorBoard logs, and the run's HParams session
                         (`training/hparams.py`)
      model.keras        the final model
      results.json       what the run ended with (`training/results.py`)

A run directory that exists is never reused unless the caller asks to
resume it; nothing in it is deleted but old backups and the temporary files
of its own files that a killed process left (`remove_temporaries`). Every
file but Keras' TensorBoard logs is written through `run_files` (a temporary
name, then a rename), and what is read back is checked, never trusted
(`read_config`, `results.read_results`, `Backups`): a file that fails is
one line naming it and the problem. See docs/guides/training.md.
"""

import contextlib
import csv
import hashlib
import io
import os
import shutil
import tempfile
import time

from keras_dropact.training import faults
from keras_dropact.training import hparams
from keras_dropact.training import results as results_lib
from keras_dropact.training import run_files
from keras_dropact.training import user_models
from keras_dropact.training.backups import is_backup_file
from keras_dropact.training.config import TrainConfig
# The toolkit's writers and readers under the names of keras-dropact 0.1.0.
from keras_dropact.training.run_files import atomic_write  # noqa: F401
from keras_dropact.training.run_files import load_json  # noqa: F401
from keras_dropact.training.run_files import read_json  # noqa: F401
from keras_dropact.training.run_files import write_json  # noqa: F401

CONFIG = "config.json"
DATASET = "dataset.json"
BACKUP = "backup"
CHECKPOINT = "checkpoint.keras"
LOG = "log.csv"
TENSORBOARD = "tensorboard"
MODEL = "model.keras"
RESULTS = results_lib.FILE
LOCK = "run.lock"
# The files of the run directory itself, each written through `run_files`.
FILES = (DATASET, CONFIG, CHECKPOINT, LOG, MODEL, RESULTS)
# The folders a run writes into; each must be a folder of its own, never a
# link to one elsewhere (`check_folders`).
FOLDERS = (BACKUP, TENSORBOARD)


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
    """runs/MODEL-DATASET-ACTIVATION-TIME (MODEL: `user_models.label`, e.g.
    MobileNetV2 for keras.applications.MobileNetV2)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    model = user_models.label(config.model)
    return os.path.join("runs", f"{model}-{config.dataset}-{config.activation}-{stamp}")


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
        """Deletes the temporary files of the run's own files that a killed
        process left, here, in backup/ and in tensorboard/ (the HParams
        files) (`run_files.remove_temporaries`:
        regular files of exactly those names; a user's files are kept).

        Call it only while holding the run's lock: no live writer owns them.
        """
        run_files.remove_temporaries(self.path, lambda name: name in FILES)
        run_files.remove_temporaries(self.file(BACKUP), is_backup_file)
        run_files.remove_temporaries(self.file(TENSORBOARD), lambda name: name in hparams.FILES)

    def check_folders(self):
        """Raises RuntimeError if backup/ or tensorboard/ is not a folder of
        the run's own: a link would have the run write and prune its backups
        (or logs) elsewhere."""
        for name in FOLDERS:
            path = self.file(name)
            if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
                what = (f"a link to {os.readlink(path)!r}" if os.path.islink(path)
                        else "not a folder")
                raise RuntimeError(
                    f"{path!r} is {what}; a run writes its {name} only into a folder of its "
                    "own. Nothing was changed; put a folder there (move the files into it), "
                    "then resume."
                )

    def progress(self):
        """The files of finished epochs or of a finished model that exist."""
        return [name for name in (LOG, CHECKPOINT, MODEL) if os.path.exists(self.file(name))]

    @contextlib.contextmanager
    def writable(self, is_chief=True, task="process0"):
        """The directory this process writes the run into, for a `with` block.

        The chief (`is_chief`) writes the run directory itself. Every other
        process of a distributed run must still run the same callbacks
        (saving reads synchronised variables, a collective operation all
        processes join), so it writes into a temporary directory, removed on
        exit, holding a copy of the run's backups, so that a resumed run
        restores the same state everywhere; this needs the run directory on
        a filesystem all processes can read.

        The temporary directory has one name per run and `task`
        (`temporary_copy`): a process killed by SIGKILL cannot remove its
        copy (as large as the backups), and the next process of that run
        and task removes it before it starts.
        """
        if is_chief:
            yield self.path
            return
        temporary = self.temporary_copy(task)
        shutil.rmtree(temporary, ignore_errors=True)  # A killed process' leftovers.
        os.makedirs(temporary)
        try:
            if os.path.isdir(self.file(BACKUP)):
                # Backups only: the chief may be removing a killed process'
                # temporary files (`remove_temporaries`) meanwhile.
                shutil.copytree(self.file(BACKUP), os.path.join(temporary, BACKUP),
                                ignore=lambda folder, names: [
                                    name for name in names if not is_backup_file(name)])
            yield temporary
        finally:
            shutil.rmtree(temporary, ignore_errors=True)

    def temporary_copy(self, task):
        """`TMPDIR/dropact-TASK-HASH`: the temporary run directory of the
        process `task` (HASH: of the run directory's absolute path)."""
        digest = hashlib.sha256(os.path.abspath(self.path).encode()).hexdigest()[:16]
        return os.path.join(tempfile.gettempdir(), f"dropact-{task}-{digest}")

    # The files -------------------------------------------------------------

    def read_config(self):
        """The run's `TrainConfig` from config.json (`TrainConfig.from_json`);
        `run_dir` is set to this directory.

        Raises:
            FileNotFoundError: no run was started here.
            RuntimeError: config.json is unreadable or not a configuration
                (one line naming it and the problem).
        """
        self.check_resumable()
        config = run_files.read_record(
            self.file(CONFIG), "a run configuration",
            "Put back the run's own copy, or start a new run.", TrainConfig.from_json,
        )
        config.run_dir = self.path
        return config

    def write_config(self, config):
        config.save(self.file(CONFIG))

    def read_results(self):
        """`results.read_results` of this directory: its `Results`, or None."""
        return results_lib.read_results(self.path)

    def write_results(self, results):
        results_lib.write_results(self.path, results)

    def write_epoch_files(self, model, history, checkpoint=True):
        """`log.csv` from `history` and, with `checkpoint`, `checkpoint.keras`."""
        if checkpoint:
            run_files.save_model(model, self.file(CHECKPOINT))
            faults.point("log_row", history[-1]["epoch"])
        run_files.write_text(self.file(LOG), log_csv(history))

    def save_model(self, model):
        """The final `model.keras`."""
        run_files.save_model(model, self.file(MODEL),
                             before_rename=lambda: faults.point("final_save"))
