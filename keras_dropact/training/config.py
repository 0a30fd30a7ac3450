"""The configuration of one training run, built from CLI flags or by hand."""

import dataclasses
import json

from keras_dropact.layers import ACTIVATIONS
from keras_dropact.layers import DEFAULT_KEEP_PROBABILITY
from keras_dropact.layers import check_keep_probability
from keras_dropact.training import recipes
from keras_dropact.training.run_dir import write_json


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run; saved as `config.json`.

    Fields left as None are taken from the recipe (`recipes.py`); the
    recipe defaults to the paper's recipe for the model, or "quick".
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
    run_dir: str | None = None
    strategy: str = "auto"
    steps_per_epoch: int | None = None
    backup_every: int = 50
    deterministic: bool = False
    light: bool = False

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"Unknown activation {self.activation!r}. Valid activations: "
                f"{', '.join(ACTIVATIONS)}."
            )
        check_keep_probability(self.p)
        for name in ("epochs", "batch_size", "steps_per_epoch", "backup_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}.")
        if self.augment is not None and self.augment != "none":
            from keras_dropact import pipelines

            if self.augment not in pipelines.augmentations():
                raise ValueError(
                    f"Unknown augmentation {self.augment!r}. Valid augmentations: "
                    f"none, {', '.join(pipelines.augmentations())}."
                )
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

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        return cls(**values)

    def save(self, path):
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path):
        with open(path) as f:
            return cls.from_dict(json.load(f))
