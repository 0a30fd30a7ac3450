"""Loading what a run produced (for `evaluate`, `export` and `predict`),
with one line naming a damaged file and what to do about it."""

import os
import zipfile

import keras

from keras_dropact.errors import error_text
from keras_dropact.errors import first_line
from keras_dropact.training import run_dir as rd
from keras_dropact.training import sources


def load_model(source):
    """Loads the model behind `source` (a run directory or a `.keras` file,
    `sources.model_file`), with a one-line error if it is corrupt.

    A `.keras` file is a zip archive; one that is truncated or damaged is
    reported as such, naming the file (Keras itself would go on to try the
    path as a SavedModel folder and report "File not found").
    """
    path = sources.model_file(source)
    fix = _fix_for(path)
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError) as error:
        raise RuntimeError(
            f"Model file {path!r} is corrupt or unreadable (not a complete .keras "
            f"archive: {first_line(error)}); {fix}."
        ) from None
    if damaged is not None:
        raise RuntimeError(
            f"Model file {path!r} is corrupt ({damaged!r} inside it is damaged); {fix}."
        )
    return _load(
        keras.saving.load_model, path,
        f"Cannot load the model in {path!r}: the file is corrupt or not a keras-dropact model",
    )


def _fix_for(path):
    """What to do about the damaged model file `path`."""
    folder, name = os.path.split(path)
    if not os.path.isfile(os.path.join(folder, rd.CONFIG)):
        return "export or train it again"
    if name == rd.CHECKPOINT:
        from keras_dropact.training.stops import resume_command

        return f"the run's backups write it again when it resumes: {resume_command(folder)}"
    return (f"move it away to use the run's {rd.CHECKPOINT} (the model at the end of its last "
            "epoch), or train the run again")


def load_saved_model(path):
    """`tf.saved_model.load(path)`, with a one-line error if it is damaged.

    TensorFlow reports truncated variables, index or graph files with
    IndexError, OpError or OSError tracebacks that do not say what to do.
    """
    import tensorflow as tf

    return _load(
        tf.saved_model.load, path,
        f"Cannot load the SavedModel in {path!r}: its files are damaged or incomplete",
        "; export the run again (`dropact export`)",
    )


def _load(loader, path, problem, fix=""):
    """`loader(path)`; any failure is one RuntimeError line: PROBLEM (ERROR)FIX."""
    try:
        return loader(path)
    except Exception as error:  # noqa: BLE001 - any failure means unusable.
        raise RuntimeError(
            f"{problem} ({error_text(error)}){fix}."
        ) from error

