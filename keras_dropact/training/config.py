"""The configuration of one training run, built from CLI flags or by hand."""

import dataclasses
import math
import numbers
import os
import re
import stat

from keras_dropact.layers import ACTIVATIONS
from keras_dropact.layers import DEFAULT_KEEP_PROBABILITY
from keras_dropact.layers import check_keep_probability
from keras_dropact.layers.activations import keras_activation_name
from keras_dropact.optimizers import SGD_OF_CONVENTION
from keras_dropact.training import recipes
from keras_dropact.training import run_files
from keras_dropact.training import user_models
from keras_dropact.training.strategies import BACKENDS
from keras_dropact.training.strategies import STRATEGIES

# config.json keys that files of earlier versions lack, with the value that
# is exactly what those versions did. --image-size came with issue 20: a run
# of an earlier version read every registered dataset at its own size (None);
# its folder: runs have no dataset.json and are refused (`run_dataset.read`).
# --train-size came with issue 24: earlier runs trained on the whole split.
# The backend came with issue 25: such a run resumes on the loaded backend
# (None), as it did. The momentum convention came with `TorchSGD`: earlier
# runs trained with Keras' SGD, and resume with it ("keras"). Models that
# are not presets (`user_models`: `model_kwargs`, `weights`,
# `convert_activation` and their files' digests) and `--channels` came with
# issue 26: earlier runs trained presets on the dataset's own channels.
ADDED_KEYS = {"image_size": None, "train_size": None, "backend": None,
              "momentum_convention": "keras", "model_kwargs": None, "weights": None,
              "convert_activation": None, "channels": None, "model_sha256": None,
              "weights_sha256": None}
# The largest `--config` file: a configuration is a few hundred bytes.
MAX_CONFIG_FILE_BYTES = 2**20
# The activations a model that is not a preset trains with: as it is, or converted.
USER_MODEL_ACTIVATIONS = ("relu", "dropact")

# The largest --seed: models give activation site i the seed `seed + i`, and
# NumPy's and TensorFlow's global seeds must stay below 2**32.
MAX_SEED = 2**31 - 1
# The most runs per configuration (`--seeds` of `dropact repro` and `dropact
# compare`): each is a training run of its own folder.
MAX_SEEDS = 1000
# The largest count (epochs, batch size, steps, ...): int32's, so that the
# products a run forms of two counts (optimizer steps = epochs x steps per
# epoch) stay within the int64 TensorFlow and Keras hold them in.
MAX_COUNT = 2**31 - 1
# TF Serving reads a version folder's name as an int64.
MAX_VERSION = 2**63 - 1
# float32's largest: the optimizer computes the learning rate in float32.
MAX_LEARNING_RATE = 3.4028234663852886e38
# The range of every integer flag of every `dropact` command, checked by
# `check_int` for the flags, config.json and the Python API alike
# (docs/reference/validation.md). Image sizes: `pipelines.check_image_size`.
INT_RANGES = {
    "epochs": (1, MAX_COUNT),
    "batch_size": (1, MAX_COUNT),
    "steps_per_epoch": (1, MAX_COUNT),
    "train_size": (1, MAX_COUNT),
    "backup_every": (1, MAX_COUNT),
    "seed": (0, MAX_SEED),
    "top_k": (1, MAX_COUNT),
    "version": (1, MAX_VERSION),
    "seeds": (1, MAX_SEEDS),
    "first_seed": (0, MAX_SEED),
    "steps": (1, MAX_COUNT),
}


def _flag(name):
    return "--" + name.replace("_", "-")


def check_int(name, value):
    """ValueError naming the flag `name` unless `value` is an int (not a
    bool) in its range, `INT_RANGES[name]`."""
    minimum, maximum = INT_RANGES[name]
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{_flag(name)} must be an integer, got {value!r}.")
    if not minimum <= value <= maximum:
        raise ValueError(f"{_flag(name)} must be in [{minimum}, {maximum}], got {value}.")


def check_seeds(first_name, first, seeds):
    """The seeds `first` .. `first + seeds - 1` of `seeds` runs per
    configuration (`repro --first-seed`, `compare --seed`: flag
    `first_name`); ValueError naming the flags unless both are in their
    ranges (`check_int`) and the last seed is at most `MAX_SEED`."""
    check_int(first_name, first)
    check_int("seeds", seeds)
    last = first + seeds - 1
    if last > MAX_SEED:
        raise ValueError(f"{_flag(first_name)} {first} and --seeds {seeds} give seeds up to "
                         f"{last}; the largest seed is {MAX_SEED}.")
    return list(range(first, last + 1))


def _check_number(name, value, wanted, is_valid):
    """ValueError unless `value` is None or a finite real number that `is_valid`."""
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or not is_valid(value)
    ):
        raise ValueError(f"{_flag(name)} must be {wanted}; got {value!r}.")


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run; saved as `config.json`.

    Fields left as None are taken from the recipe (`recipes.py`); the
    recipe defaults to the paper's recipe for the model, or "quick".
    `backend` is the Keras backend the run trains on: a new run records
    the loaded one, and a resume must run on it (`dropact train --resume`
    restarts itself on it, as `--backend` does).
    `light` runs (the CPU-scale experiments) write no backup, checkpoint,
    TensorBoard log or saved model, and restart from epoch 0 when resumed.
    `deterministic` turns on TensorFlow's op determinism, so that a run (and
    its resumption) gives the same weights bit for bit on the same machine.
    `momentum_convention` is the SGD recipes' optimizer
    (`optimizers.SGD_OF_CONVENTION`): "pytorch" (`TorchSGD`, the paper's),
    or "keras" (`keras.optimizers.SGD`), which runs of earlier versions
    trained and resume with; no flag sets it.
    A `model` that is not a preset (`user_models`: keras.applications.NAME,
    a .keras file, package.module:function) takes `model_kwargs`, `weights`
    (a .weights.h5 to start from) and `convert_activation` (the
    nonlinearity `activation="dropact"` converts, default "relu"); a new run
    records its files' SHA-256 (`model_sha256`, `weights_sha256`, no flag).
    `channels` (1 or 3) reads the images gray or RGB, as `image_size` reads
    them at another size.
    """

    model: str = "resnet-20"
    dataset: str = "digits"
    activation: str = "dropact"
    p: float = DEFAULT_KEEP_PROBABILITY
    augment: str | None = None
    recipe: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    dropout: float | None = None
    seed: int = 0
    mixed_precision: bool = False
    data_dir: str | None = None
    image_size: list[int] | None = None
    run_dir: str | None = None
    strategy: str = "auto"
    steps_per_epoch: int | None = None
    train_size: int | None = None
    backup_every: int = 50
    deterministic: bool = False
    light: bool = False
    backend: str | None = None
    momentum_convention: str = "pytorch"
    model_kwargs: dict | None = None
    weights: str | None = None
    convert_activation: str | None = None
    channels: int | None = None
    model_sha256: str | None = None
    weights_sha256: str | None = None

    def __post_init__(self):
        """Rejects impossible values up front, naming the flag and the fix.

        Only checks that need no data or model; `training.validate` checks
        the model/dataset combination and the data before a run starts.
        """
        for name in ("model", "dataset"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"--{name} must be a name, got {getattr(self, name)!r}.")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"Unknown activation {self.activation!r}. Valid activations: "
                f"{', '.join(ACTIVATIONS)}."
            )
        check_keep_probability(self.p)
        # None: the recipe's (epochs, batch size, steps per epoch), the whole split (train size).
        for name in ("epochs", "batch_size", "steps_per_epoch", "train_size"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name))
        check_int("backup_every", self.backup_every)
        check_int("seed", self.seed)
        _check_number("lr", self.lr, "a positive learning rate, e.g. --lr 0.1",
                      lambda v: v > 0)
        if self.lr is not None and self.lr > MAX_LEARNING_RATE:
            raise ValueError(f"--lr {self.lr} is more than float32, in which the optimizer "
                             f"computes, holds ({MAX_LEARNING_RATE:.7g}); e.g. --lr 0.1.")
        _check_number("weight_decay", self.weight_decay,
                      "a weight decay >= 0, e.g. --weight-decay 5e-4 (0 for none)",
                      lambda v: v >= 0)
        _check_number("dropout", self.dropout,
                      "a dropout rate in [0, 1), e.g. --dropout 0.3 (0 for none)",
                      lambda v: 0 <= v < 1)
        for name in ("mixed_precision", "deterministic", "light"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}.")
        if self.backend is not None and self.backend not in BACKENDS:
            raise ValueError(
                f"Unknown backend {self.backend!r}. Valid backends: {', '.join(BACKENDS)}."
            )
        if self.momentum_convention not in SGD_OF_CONVENTION:
            raise ValueError(
                f"Unknown momentum convention {self.momentum_convention!r}. Valid "
                f"conventions: {', '.join(SGD_OF_CONVENTION)}."
            )
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"Unknown strategy {self.strategy!r}. Valid strategies: "
                f"{', '.join(STRATEGIES)}."
            )
        for name in ("data_dir", "run_dir"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"--{name.replace('_', '-')} must be a path, got {value!r}.")
        self._check_reading()
        self._check_model_options()
        if self.recipe is None:
            self.recipe = recipes.default_for(self.model, self.dataset)
        recipes.get(self.recipe)  # Fails early, listing the recipes.

    def _check_reading(self):
        """The augmentation and how the images are read (`image_size`, `channels`)."""
        if self.augment is not None and self.augment != "none":
            from keras_dropact import pipelines

            if self.augment not in pipelines.augmentations():
                raise ValueError(
                    f"Unknown augmentation {self.augment!r}. Valid augmentations: "
                    f"{', '.join(pipelines.augmentations())}."
                )
        if self.image_size is not None or self.channels is not None:
            from keras_dropact import pipelines

            self.image_size = pipelines.check_image_size(self.image_size)
            pipelines.check_channels(self.channels)

    def _check_model_options(self):
        """The options of models that are not presets (`user_models`)."""
        what = user_models.kind(self.model)
        custom = what in user_models.KINDS[1:]
        if custom and self.activation not in USER_MODEL_ACTIVATIONS:
            raise ValueError(
                f"Activation {self.activation!r} is for presets; --model {self.model} trains "
                "as it is (relu) or converted to Drop-Activation (dropact)."
            )
        for name in ("model_kwargs", "weights", "convert_activation"):
            if getattr(self, name) is not None and not custom:
                raise ValueError(
                    f"{_flag(name)} is for keras.applications, .keras and module:function "
                    f"models, not --model {self.model}."
                )
        if self.model_kwargs is not None:
            if not isinstance(self.model_kwargs, dict) or what == "file":
                raise ValueError(f"--model-kwargs must be a JSON object of a builder's "
                                 f"arguments (a .keras file has none), got {self.model_kwargs!r}.")
            reserved = sorted(set(self.model_kwargs) & set(user_models.RESERVED[what]))
            if reserved:
                raise ValueError(f"--model-kwargs may not set {', '.join(reserved)}: "
                                 "dropact sets them from the data.")
        if self.weights is not None and (not isinstance(self.weights, str) or not self.weights):
            raise ValueError(f"--weights must be a path, got {self.weights!r}.")
        if self.convert_activation is not None:
            try:
                keras_activation_name(self.convert_activation)
            except ValueError as error:
                raise ValueError(f"--convert-activation: {error}") from None
        for name in user_models.DIGEST_KEYS:
            value = getattr(self, name)
            if value is not None and not (isinstance(value, str) and re.fullmatch("[0-9a-f]{64}", value)):
                raise ValueError(f"{name} must be a SHA-256 digest (64 hex digits), got {value!r}.")

    def resolved_recipe(self):
        """The recipe with this config's overrides applied."""
        overrides = {
            name: getattr(self, name)
            for name in ("epochs", "batch_size", "lr", "weight_decay", "dropout")
            if getattr(self, name) is not None
        }
        return dataclasses.replace(recipes.get(self.recipe), **overrides)

    def augmentation(self, info):
        """The training augmentation: `augment`, else the dataset's recipe default.

        `info` is `pipelines.info(self.dataset)`.
        """
        if self.augment is None:
            return info["recipe_augment"]
        return None if self.augment == "none" else self.augment

    def reading(self):
        """How the pipelines read the data: {"image_size", "channels"}."""
        return {"image_size": self.image_size, "channels": self.channels}

    def train_examples(self, info):
        """The examples training reads: the first `train_size` of the
        training split, or all of it. `info` is `pipelines.info(self.dataset)`."""
        return self.train_size or info["splits"]["train"]

    def model_arguments(self):
        """The arguments `models.build` gets beyond the preset's: seed, decay, dropout."""
        recipe = self.resolved_recipe()
        arguments = {"seed": self.seed, "weight_decay": recipe.weight_decay}
        if recipe.dropout is not None:
            arguments["dropout"] = recipe.dropout
        return arguments

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, values):
        """The configuration in `values` (config.json's object), checked.

        Every field must be there with a value of its type (but the
        `ADDED_KEYS` that files of earlier versions lack, which get the value
        those versions used), and no other; the values are checked as flags
        are. Nothing else is filled in.

        Raises:
            ValueError: the first problem, in a few words.
        """
        problem = run_files.record_problem(values, run_files.json_fields(cls),
                                           optional=ADDED_KEYS)
        if problem is not None:
            raise ValueError(problem)
        return cls(**{**ADDED_KEYS, **values})

    def save(self, path):
        run_files.write_json(path, self.to_dict())


def read_config_file(path):
    """The `TrainConfig` fields a `--config` file sets, checked key by key.

    The file is a JSON object (a run's own config.json) or, if its name ends
    in `.toml`, a TOML table, of any of the fields (config.json's keys, of
    its kinds: `image_size` a list); at most `MAX_CONFIG_FILE_BYTES`. The
    values are checked when the TrainConfig is made, as flags are.

    Raises:
        ValueError: one line naming the file and its first problem (an
            unknown key, a value of the wrong kind, not JSON or TOML).
    """
    where = f"--config {path!r}"
    try:
        info = os.stat(path)
    except OSError as error:
        raise ValueError(f"{where}: {error.strerror}.") from None
    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_CONFIG_FILE_BYTES:
        raise ValueError(f"{where} is not a configuration file (a regular file of at most "
                         f"{MAX_CONFIG_FILE_BYTES} bytes).")
    try:
        if path.endswith(".toml"):
            with open(path, "rb") as f:
                values = _tomllib().load(f)
        else:
            values = run_files.load_json(path)
    except (OSError, ValueError) as error:
        raise ValueError(f"{where} is not {'TOML' if path.endswith('.toml') else 'JSON'} "
                         f"({error}).") from None
    fields = run_files.json_fields(TrainConfig)
    problem = run_files.record_problem(values, fields, optional=fields)
    if problem is not None:
        raise ValueError(f"{where} is no training configuration: {problem} (its keys: "
                         f"{', '.join(fields)}).")
    return values


def _tomllib():
    """Python's TOML reader: `tomllib` (3.11+), or `tomli` (3.10, the train extra)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10.
        from keras_dropact.extras import require

        require("train", "tomli", feature="a TOML --config file on Python 3.10")
        import tomli as tomllib
    return tomllib
