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
        """Raises ValueError unless the counts are possible for a run."""
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


def assign(variables, saved, what, add=False):
    """Assigns the `saved` values (of `values`) to `variables`, or adds them.

    Raises:
        RuntimeError: their counts differ: the values belong to another model.
    """
    if len(variables) != len(saved):
        raise RuntimeError(
            f"The backup holds {len(saved)} {what} values, the model "
            f"{len(variables)}: it belongs to another model."
        )
    for variable, value in zip(variables, saved):
        value = np.asarray(value, dtype=variable.dtype)
        if add:
            value = value + keras.ops.convert_to_numpy(variable)
        variable.assign(value)
