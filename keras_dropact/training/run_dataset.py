"""The data a run was started on, saved with it as `RUN_DIR/dataset.json`.

A `folder:PATH` dataset is whatever PATH holds when it is read: its class
names are its sub-folder names, its image size is `--image-size` or the most
common size of its images. So a run records, when it starts,

    {"dataset": "folder:data", "shape": [32, 32, 3],
     "class_names": ["ant", "bee"], "splits": {"train": 80, "test": 20},
     "split_digests": {"train": "<sha256>", "test": "<sha256>"}}

and keeps them however the folder changes afterwards: `export` and
`predict` take the class names and input shape from the record (the folder
may be gone), `--resume` and `evaluate` refuse a folder that no longer
matches it (classes renamed, added or removed, other split sizes, files
or image shape; `split_digests` fingerprint the names of each split's
files, not their contents) with one line saying what changed. Runs on
registered datasets write the same record; for a run without one (started
by an older version) the registry's description stands in, while a
`folder:` run without one is refused: its classes are unknown.

The record is a file of its own rather than part of `config.json`:
config.json holds what the user asked for (`--image-size` may be unset),
dataset.json what the data turned out to be; each is written once, by its
own atomic rename, dataset.json first, so a run with a config.json always
has its dataset.json.
"""

import dataclasses
import os
from typing import Mapping, Optional, Tuple

from keras_dropact.pipelines import registry
from keras_dropact.training import run_files
from keras_dropact.training.run_dir import DATASET

FILE = DATASET
# What to do about a damaged dataset.json.
FIX = "Put back the run's own copy, or export/evaluate its model.keras with --dataset."


@dataclasses.dataclass(frozen=True)
class DatasetRecord:
    """What a model was trained on: the dataset's name, the shape of one
    example, the label names (label i is `class_names[i]`), the number of
    examples per split and, for a folder, digests of each split's file list
    (None otherwise)."""

    dataset: str
    shape: Tuple[int, ...]
    class_names: Tuple[str, ...]
    splits: Mapping[str, int]
    split_digests: Optional[Mapping[str, str]] = None

    @classmethod
    def of(cls, dataset, image_size=None, channels=None):
        """The record of `dataset` as it is now (a folder is scanned), read
        at `image_size` with `channels` (`registry.get`)."""
        return cls.from_spec(registry.get(dataset, image_size, channels))

    @classmethod
    def from_spec(cls, spec):
        digests = None if spec.split_digests is None else dict(spec.split_digests)
        return cls(spec.name, tuple(spec.shape), tuple(spec.class_names),
                   {split: spec.splits[split] for split in registry.SPLITS}, digests)

    @property
    def is_folder(self):
        return registry.is_folder(self.dataset)

    @property
    def image_size(self):
        """[height, width] the images were read at; None for 1-D signals."""
        return list(self.shape[:2]) if len(self.shape) == 3 else None

    def to_dict(self):
        return {"dataset": self.dataset, "shape": list(self.shape),
                "class_names": list(self.class_names), "splits": dict(self.splits),
                "split_digests": self.split_digests}

    @classmethod
    def from_json(cls, values):
        """The record in `values` (dataset.json's object), checked field by field.

        Raises:
            ValueError: the first bad, missing or unknown field.
        """
        problem = run_files.record_problem(values, dict.fromkeys(cls.__dataclass_fields__, (
            None, bool, int, float, str, list, dict)))
        if problem is not None:
            raise ValueError(problem)
        checks = {
            "dataset": lambda v: isinstance(v, str) and bool(v),
            "shape": lambda v: isinstance(v, list) and bool(v) and all(_positive(d) for d in v),
            "class_names": lambda v: isinstance(v, list) and len(v) >= 2 and all(
                isinstance(n, str) and n for n in v),
            "splits": lambda v: isinstance(v, dict) and set(v) == set(registry.SPLITS) and all(
                _positive(n) for n in v.values()),
            "split_digests": lambda v: v is None or (
                isinstance(v, dict) and set(v) == set(registry.SPLITS)
                and all(isinstance(d, str) and len(d) == 64 for d in v.values())),
        }
        for key, is_valid in checks.items():
            if not is_valid(values[key]):
                raise ValueError(f"{key!r} is {values[key]!r}")
        return cls(values["dataset"], tuple(values["shape"]), tuple(values["class_names"]),
                   dict(values["splits"]), values["split_digests"])

    def differences(self, current):
        """What changed from this record to `current`, as short phrases."""
        changes = []
        added = [n for n in current.class_names if n not in self.class_names]
        removed = [n for n in self.class_names if n not in current.class_names]
        if added or removed:
            changes.append(f"classes {self.class_names} -> {current.class_names}")
        elif self.class_names != current.class_names:
            changes.append(f"class order {self.class_names} -> {current.class_names}")
        same_classes = not changes
        for split in registry.SPLITS:
            if self.splits[split] != current.splits[split]:
                changes.append(f"{split} images {self.splits[split]} -> {current.splits[split]}")
            elif same_classes and ((self.split_digests or {}).get(split)
                                   != (current.split_digests or {}).get(split)):
                changes.append(f"other {split} files (as many, other names)")
        if tuple(self.shape) != tuple(current.shape):
            changes.append(f"image shape {tuple(self.shape)} -> {tuple(current.shape)}")
        return changes


def image_size_argument(text):
    """The argparse type of `--image-size`: "N" or "HEIGHTxWIDTH" -> [height, width].

    Only the form is checked here; the size's range is `TrainConfig`'s to
    check (`pipelines.check_image_size`), as for config.json.
    """
    import argparse

    from keras_dropact import pipelines

    parts = text.lower().split("x")
    if len(parts) > 2 or not all(part.isdigit() and int(part) >= 1 for part in parts):
        try:
            pipelines.check_image_size(text)  # A string: raises, naming the text.
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return [int(parts[0]), int(parts[-1])]


def _positive(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def path(run_dir):
    return os.path.join(run_dir, FILE)


def write(run_dir, config):
    """Records `config`'s dataset in `run_dir` (atomically).

    Call it when a run starts, before `config.json` is written. Returns the
    folder's note for the user (how many images are resized to the most
    common size), or None; the caller shows it as its verbosity says.
    """
    spec = registry.get(config.dataset, config.image_size, config.channels)
    run_files.write_json(path(run_dir), DatasetRecord.from_spec(spec).to_dict())
    return spec.note or None


def read(run_dir, dataset):
    """The record of the run in `run_dir`, which trained on `dataset`.

    Without a dataset.json (a run of an older version), a registered
    dataset's description is taken from the registry; a folder's cannot be.

    Raises:
        RuntimeError: dataset.json is unreadable, malformed, of another
            dataset, or missing for a `folder:` run.
    """
    file = path(run_dir)
    if not os.path.exists(file):
        if registry.is_folder(dataset):
            raise RuntimeError(
                f"Run {run_dir!r} has no {FILE}: the classes and image size of its "
                f"{dataset!r} data were not recorded (a run of an older version). Use "
                f"its model.keras with --dataset {dataset} if the folder is unchanged."
            )
        return DatasetRecord.of(dataset)
    record = run_files.read_record(file, "a dataset record", FIX, DatasetRecord.from_json)
    if record.dataset != dataset:
        raise RuntimeError(
            f"{file!r} records dataset {record.dataset!r}, but the run's config.json "
            f"says {dataset!r}; one of them was edited. Nothing was changed."
        )
    return record


def check_unchanged(run_dir, config):
    """For `--resume`: raises unless `config`'s data, read as the run reads
    it (`config.reading()`), still is what the run started on.

    Raises:
        ValueError: one line naming the data, the run and what changed.
        RuntimeError: the run's dataset.json is unusable (`read`).
    """
    record = read(run_dir, config.dataset)
    check_matches(record, run_dir, DatasetRecord.of(config.dataset, **config.reading()))


def check_matches(record, run_dir, current=None, channels=None):
    """Raises unless the data now (`current`; default: read at the
    recorded size with the run's `--channels`, as `evaluate` reads it)
    match the run's `record`.

    Raises:
        ValueError: one line naming the data, the run and what changed.
    """
    current = current or DatasetRecord.of(record.dataset, record.image_size, channels)
    changes = record.differences(current)
    if changes:
        raise ValueError(
            f"{record.dataset} no longer matches run {run_dir!r} ({FILE}): "
            f"{'; '.join(changes)}. Restore the data the run started on, or start a new run."
        )
