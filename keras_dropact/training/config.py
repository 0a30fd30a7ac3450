"""The configuration of one training run, built from CLI flags or by hand."""

import dataclasses
import math
import numbers

from keras_dropact.layers import ACTIVATIONS
from keras_dropact.layers import DEFAULT_KEEP_PROBABILITY
from keras_dropact.layers import check_keep_probability
from keras_dropact.training import recipes
from keras_dropact.training import run_files
from keras_dropact.training.strategies import BACKENDS
from keras_dropact.training.strategies import STRATEGIES

# config.json keys that files of earlier versions lack, with the value that
# is exactly what those versions did. --image-size came with issue 20: a run
# of an earlier version read every registered dataset at its own size (None);
# its folder: runs have no dataset.json and are refused (`run_dataset.read`).
# --train-size came with issue 24: earlier runs trained on the whole split.
# The backend came with issue 25: such a run resumes on the loaded backend
# (None), as it did.
ADDED_KEYS = {"image_size": None, "train_size": None, "backend": None}

# The largest --seed: models give activation site i the seed `seed + i`, and
# NumPy's and TensorFlow's global seeds must stay below 2**32.
MAX_SEED = 2**31 - 1


def _flag(name):
    return "--" + name.replace("_", "-")


def _check_int(name, value, minimum, maximum=None):
    """ValueError unless `value` is an int (not a bool) in [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{_flag(name)} must be an integer, got {value!r}.")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{_flag(name)} must be {bound}, got {value}.")


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
        for name in ("epochs", "batch_size", "steps_per_epoch", "train_size", "backup_every"):
            value = getattr(self, name)
            if value is not None:
                _check_int(name, value, minimum=1)
        _check_int("seed", self.seed, minimum=0, maximum=MAX_SEED)
        _check_number("lr", self.lr, "a positive learning rate, e.g. --lr 0.1",
                      lambda v: v > 0)
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
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"Unknown strategy {self.strategy!r}. Valid strategies: "
                f"{', '.join(STRATEGIES)}."
            )
        for name in ("data_dir", "run_dir"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"--{name.replace('_', '-')} must be a path, got {value!r}.")
        if self.augment is not None and self.augment != "none":
            from keras_dropact import pipelines

            if self.augment not in pipelines.augmentations():
                raise ValueError(
                    f"Unknown augmentation {self.augment!r}. Valid augmentations: "
                    f"{', '.join(pipelines.augmentations())}."
                )
        if self.image_size is not None:
            from keras_dropact import pipelines

            self.image_size = pipelines.check_image_size(self.image_size)
        if self.recipe is None:
            self.recipe = recipes.default_for(self.model, self.dataset)
        recipes.get(self.recipe)  # Fails early, listing the recipes.

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
