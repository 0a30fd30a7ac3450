"""The SOURCE of `evaluate`, `export` and `predict`, interpreted in one place.

    source = sources.resolve("runs/digits")           # a run directory
    source.model_file, source.config, source.record   # what the commands use

A SOURCE is

- a run directory: its final `model.keras`, or, for a run that has not
  finished, the `checkpoint.keras` of its last finished epoch; its
  config.json (`RunDir.read_config`, read once) and the data it recorded
  (`run_dataset.read`), with its `--data-dir`; the module of a
  `module:function` model is imported (`user_models.register`);
- a `.keras` file, with the dataset it was trained on (`--dataset`);
- for `predict` only (`saved_model=True`), an exported SavedModel version
  folder, or its model folder (the highest version, as TF Serving picks).

`--dataset` names the data of any model file or run (read now: a folder is
scanned); without it a run's recorded data is used.
"""

import dataclasses
import os

from keras_dropact.training import run_dataset
from keras_dropact.training import run_dir as rd
from keras_dropact.training import user_models
from keras_dropact.training.config import TrainConfig
from keras_dropact.training.run_dataset import DatasetRecord

SAVED_MODEL = "saved_model.pb"


@dataclasses.dataclass(frozen=True)
class Source:
    """What a SOURCE path is (see the module docstring).

    Attributes:
        path: the path as given.
        model_file: the `.keras` file to load, or None for a SavedModel.
        saved_model: the SavedModel version folder, or None.
        config: the run's `TrainConfig` (a run directory), or None.
        record: the `DatasetRecord` of the data the model was trained on
            (None for a SavedModel: its metadata.json says).
        data_dir: the run's `--data-dir`, or None.
    """

    path: str
    model_file: str | None = None
    saved_model: str | None = None
    config: TrainConfig | None = None
    record: DatasetRecord | None = None
    data_dir: str | None = None


def model_file(path):
    """The `.keras` file behind `path`: a run directory or a `.keras` file.

    Raises:
        FileNotFoundError: neither, or a run directory without a model yet.
    """
    if os.path.isdir(path):
        for name in (rd.MODEL, rd.CHECKPOINT):
            if os.path.isfile(os.path.join(path, name)):
                return os.path.join(path, name)
        raise FileNotFoundError(
            f"{path!r} holds no {rd.MODEL} or {rd.CHECKPOINT}: is it a run "
            "directory of `dropact train`, and did its first epoch finish?"
        )
    if os.path.isfile(path) and path.endswith(".keras"):
        return path
    raise FileNotFoundError(f"{path!r} is neither a run directory nor a .keras model file.")


def latest_version(path):
    """The highest numeric version folder holding a SavedModel, for a model
    folder of TF Serving's layout (`saved_models/NAME`); else `path`."""
    if not os.path.isdir(path) or os.path.isfile(os.path.join(path, SAVED_MODEL)):
        return path
    versions = [int(d) for d in os.listdir(path)
                if d.isdigit() and os.path.isfile(os.path.join(path, d, SAVED_MODEL))]
    return os.path.join(path, str(max(versions))) if versions else path


def resolve(path, dataset=None, saved_model=False):
    """The `Source` at `path`, checked before anything is loaded or written.

    Args:
        dataset: the dataset the model was trained on (needed for a bare
            `.keras` file; for a run, instead of its recorded data).
        saved_model: a SavedModel (or its model folder) is a source too.

    Raises:
        FileNotFoundError: no model at `path`.
        ValueError: a bare model file without `dataset`; an unknown name.
        RuntimeError: the run's config.json or dataset.json is unusable
            (one line naming it).
    """
    if saved_model:
        version = latest_version(path)
        if os.path.isfile(os.path.join(version, SAVED_MODEL)):
            return Source(path, saved_model=version)
    model = model_file(path)
    run = rd.RunDir(path)
    config = run.read_config() if os.path.isfile(run.file(rd.CONFIG)) else None
    if config is not None:
        user_models.register(config.model)  # A builder's layers, for model.keras.
    if dataset is not None:
        return Source(path, model, config=config, record=DatasetRecord.of(dataset))
    if config is None:
        from keras_dropact import pipelines

        what = "a folder without config.json" if os.path.isdir(path) else "a model file"
        raise ValueError(
            f"{path!r} is {what}, not a run directory: name the dataset its model "
            f"was trained on with --dataset (one of {', '.join(pipelines.names())}); "
            "its normalisation and class names come from that dataset."
        )
    record = run_dataset.read(path, config.dataset)
    return Source(path, model, config=config, record=record, data_dir=config.data_dir)
