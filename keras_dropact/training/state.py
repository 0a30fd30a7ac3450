"""`TrainingState`: where a run is, and all it carries to the next process.

A backup (`backups.py`) is the model's weights and optimizer state (one
`.weights.h5` file) plus a `TrainingState` as JSON. Together they let a run
killed at any instruction continue with the same optimizer steps on the
same batches, with the same random streams, as the uninterrupted run
(docs/guides/training.md):

- the data is `pipelines.stream_fn`'s stream, whose batch i depends only on
  (seed, i), so the resumed process starts it at `optimizer_steps`;
- `seeds` holds every `SeedGenerator` state (the Drop-Activation masks,
  which `save_weights` does not save);
- `metrics` holds the unfinished epoch's running metric totals, so even
  that epoch's logged averages match.
"""

import dataclasses

import keras
import numpy as np

from keras_dropact.training import run_files


@dataclasses.dataclass
class TrainingState:
    """The position and record of a run between two optimizer steps.

    Attributes:
        epoch: the epoch being trained (the next one at an epoch's end).
        step: optimizer steps done in `epoch`.
        optimizer_steps: optimizer steps done in the whole run.
        steps_per_epoch: optimizer steps in one epoch.
        history: one row (the epoch logs) per finished epoch.
        metrics: running metric totals of the unfinished epoch, or None.
        epoch_seconds: training seconds already spent in the unfinished epoch.
        seeds: the `SeedGenerator` states of the model (`seed_variables`).
        wall_seconds, train_seconds, timed_examples: the run's counters over
            all processes so far (see `counters.Counters`).
        processes: the processes that have trained the run so far.
    """

    epoch: int = 0
    step: int = 0
    optimizer_steps: int = 0
    steps_per_epoch: int | None = None
    history: list = dataclasses.field(default_factory=list)
    metrics: list | None = None
    epoch_seconds: float = 0.0
    seeds: list = dataclasses.field(default_factory=list)
    wall_seconds: float = 0.0
    train_seconds: float = 0.0
    timed_examples: int = 0
    processes: int = 0

    @property
    def mid_epoch(self):
        return self.step > 0

    @property
    def before_epoch_end(self):
        """The epoch's last step is done, its end (validation, history row,
        checkpoint) is not: a position no backup of this version holds.

        Versions before issue 20 backed up there when a signal came in an
        epoch's last step; `Backups.restore` replays such a backup from the
        one before it instead.
        """
        return self.step == self.steps_per_epoch

    def to_json(self):
        """The state as a JSON-ready dict (a backup's JSON holds its keys)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, values):
        """The state in `values` (a backup's JSON without its own keys), checked.

        Every field must be there with a value of its type, and no other;
        the counts must be possible (`check`). Nothing is filled in.

        Raises:
            ValueError: the first problem, in a few words.
        """
        fields = {**run_files.json_fields(cls), "steps_per_epoch": (int,)}
        problem = run_files.record_problem(values, fields)
        if problem is not None:
            raise ValueError(problem)
        state = cls(**{key: values[key] for key in fields})
        state.check()
        return state

    def check(self):
        """Raises ValueError unless the state is a position a run can be at.

        The counts are not negative; the step lies in an epoch; epoch, step
        and optimizer step agree (every epoch of a run has
        `steps_per_epoch` steps: a resume with other epochs is refused);
        there is one history row per finished epoch (`history_problem`).
        """
        counts = {"epoch": 0, "step": 0, "optimizer_steps": 0, "timed_examples": 0,
                  "processes": 1, "steps_per_epoch": 1, "epoch_seconds": 0,
                  "wall_seconds": 0, "train_seconds": 0}
        for name, least in counts.items():
            if getattr(self, name) < least:
                raise ValueError(f"{name!r} is {getattr(self, name)!r}, below {least}")
        if not self.step <= min(self.steps_per_epoch, self.optimizer_steps):
            raise ValueError(
                f"step {self.step} is not in an epoch of {self.steps_per_epoch} steps "
                f"after {self.optimizer_steps} optimizer steps"
            )
        if self.optimizer_steps != self.epoch * self.steps_per_epoch + self.step:
            raise ValueError(
                f"epoch {self.epoch}, step {self.step} is optimizer step "
                f"{self.epoch * self.steps_per_epoch + self.step} in epochs of "
                f"{self.steps_per_epoch} steps, not {self.optimizer_steps}"
            )
        problem = history_problem(self.history)
        if problem is None and len(self.history) != self.epoch:
            problem = f"it holds {len(self.history)} history rows at epoch {self.epoch}"
        if problem is not None:
            raise ValueError(problem)

    def check_fits(self, steps_per_epoch, epochs):
        """Raises ValueError unless a run of `epochs` epochs of
        `steps_per_epoch` optimizer steps (its data now) can go on from here."""
        if self.steps_per_epoch != steps_per_epoch:
            raise ValueError(
                f"it was taken in epochs of {self.steps_per_epoch} optimizer steps; they "
                f"are now {steps_per_epoch} (the training data, the batch size or the steps "
                "per epoch differ from the run's)"
            )
        if (self.epoch, self.step) > (epochs, 0):
            raise ValueError(
                f"it is at epoch {self.epoch}, step {self.step}, past the run's {epochs} epochs"
            )


def history_problem(history):
    """The first way `history` is not a list of epoch rows, or None: row i
    is an object whose "epoch" is i and whose other values are numbers (or
    null: a non-finite value)."""
    for index, row in enumerate(history):
        epoch = row.get("epoch") if isinstance(row, dict) else None
        if isinstance(epoch, bool) or epoch != index:
            return f"history row {index} is {_short(row)}, not the logs of epoch {index}"
        for key, value in row.items():
            if not (value is None or run_files.has_kind(value, float)):
                return f"history row {index} holds {key!r}: {_short(value)}, not a number"
    return None


def _short(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def seed_variables(model):
    """The `SeedGenerator` state variables of `model`, in a fixed order.

    `model.variables` holds the weights plus the seed states; weights files
    hold only the weights, so the seed states travel in the state's JSON.
    """
    weight_ids = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weight_ids]


def values(variables):
    """The variables' values as (nested) lists, for JSON."""
    return [np.asarray(keras.ops.convert_to_numpy(v)).tolist() for v in variables]


def build_metrics(model, example_shape):
    """Creates the compiled metrics' variables of `model` now.

    Keras creates them in `fit`'s first step, from the first batch
    (`Trainer._symbolic_build`, which `fit` calls); building them from a
    symbolic batch of the run's data, (float32 examples of
    `example_shape`, int32 labels) as every pipeline here yields, lets a
    backup's metric totals be checked (`check_values`) before training
    starts. `fit` then finds them built.
    """
    batch = (keras.KerasTensor((None, *example_shape), "float32"),
             keras.KerasTensor((None,), "int32"))
    model._symbolic_build(data_batch=batch)


def check_values(variables, saved, what):
    """Raises ValueError unless `saved` (of `values`) fits `variables`:
    as many values, each of its variable's shape."""
    if not isinstance(saved, list) or len(variables) != len(saved):
        count = len(saved) if isinstance(saved, list) else repr(saved)
        raise ValueError(
            f"it holds {count} {what} values, the model {len(variables)}: "
            "it belongs to another model"
        )
    for variable, value in zip(variables, saved):
        shape = np.shape(value) if _is_numeric(value) else None
        if shape != tuple(variable.shape):
            raise ValueError(
                f"its {what} value for {variable.path} is not a number array of shape "
                f"{tuple(variable.shape)}"
            )


def _is_numeric(value):
    try:
        array = np.asarray(value)
    except ValueError:  # Ragged lists.
        return False
    return array.dtype.kind in "iuf"


def assign(variables, saved, what, add=False):
    """Assigns the `saved` values (of `values`) to `variables`, or adds them.

    Raises:
        ValueError: they do not fit (`check_values`).
    """
    check_values(variables, saved, what)
    for variable, value in zip(variables, saved):
        value = np.asarray(value, dtype=variable.dtype)
        if add:
            value = value + keras.ops.convert_to_numpy(variable)
        variable.assign(value)
