"""`results.json`: what a run ended with, one typed record (`Results`).

A run writes it once, when it ends: `"status": "finished"` with the test
error and loss, or `"diverged"` with where it stopped (docs/guides/training.md,
"results.json"). The record is built and checked here and nowhere else,
and read back only through `read_results` (`dropact train --resume`,
`export`, `dropact repro`): every key of its status, each of its kind and
in its range (errors in [0, 1], counts and times not negative, history
rows numbered 0, 1, ...), or one line naming the file and the problem.

    results = read_results("runs/digits")      # Results, or None: no results.json yet
    results.test_error, results["history"]     # fields; also a read-only mapping of its JSON
"""

import collections.abc
import dataclasses
import os

from keras_dropact.training import run_files
from keras_dropact.training.state import history_problem

FILE = "results.json"
STATUSES = ("finished", "diverged")
# What to do about a damaged results.json.
FIX = "Move it away to let --resume evaluate the run and write it again."


@dataclasses.dataclass(frozen=True, eq=False)
class Results(collections.abc.Mapping):
    """The record of a run that ended (see the module docstring).

    It is also a read-only mapping of its JSON (`results["test_error"]`,
    `dict(results)`), as `train()` returned a dict before.

    Attributes:
        status: "finished" or "diverged".
        config: the run's `TrainConfig` as config.json holds it.
        recipe: the resolved recipe (`Recipe` fields).
        epochs_completed: finished epochs, one `history` row each.
        optimizer_steps: the optimizer's step counter at the end.
        history: one row of epoch logs per finished epoch ("epoch": 0, 1, ...).
        wall_seconds, train_seconds, timed_examples, images_per_second,
            processes: the counters over all processes (`counters.Counters`).
        versions: the software the run ended with (`run.versions`).
        distribution: strategy, replicas and processes; None (no key) in
            runs of versions before the JAX backend.
        test_error, test_loss, trainable_parameters: a finished run's
            evaluation (`test_loss` None: a finished run of a version before
            issue 20 with a non-finite loss); None when diverged.
        diverged_at_step, diverged_in_epoch, message: where a diverged run
            stopped, and why; None when finished.
        converted_sites: the activation sites `convert` made Drop-Activations
            of, in a model that is not a preset (`user_models`); None (no
            key) otherwise.
    """

    status: str
    config: dict
    recipe: dict
    epochs_completed: int
    optimizer_steps: int
    history: list
    wall_seconds: float
    train_seconds: float
    timed_examples: int
    images_per_second: float | None
    processes: int
    versions: dict
    distribution: dict | None = None
    test_error: float | None = None
    test_loss: float | None = None
    trainable_parameters: int | None = None
    diverged_at_step: int | None = None
    diverged_in_epoch: int | None = None
    message: str | None = None
    converted_sites: int | None = None

    def __post_init__(self):
        for name in ("config", "recipe", "history", "distribution", "versions"):
            object.__setattr__(self, name, run_files.strict(getattr(self, name)))
        problem = problem_of(self.to_json())
        if problem is not None:
            raise ValueError(problem)

    def to_json(self):
        """The JSON object of results.json: the status and its keys first."""
        values = {name: getattr(self, name) for name in ("status", *_BY_STATUS.get(self.status, {}))}
        for name in _COMMON:
            if name != "status" and not (name in _ADDED and getattr(self, name) is None):
                values[name] = getattr(self, name)
        return values

    @classmethod
    def from_json(cls, values):
        """The record in `values` (results.json's object), checked.

        Raises:
            ValueError: the first problem, in a few words.
        """
        problem = problem_of(values)
        if problem is not None:
            raise ValueError(problem)
        return cls(**values)

    def __getitem__(self, key):
        return self.to_json()[key]

    def __iter__(self):
        return iter(self.to_json())

    def __len__(self):
        return len(self.to_json())


_COMMON = {
    "status": (str,), "config": (dict,), "recipe": (dict,), "epochs_completed": (int,),
    "optimizer_steps": (int,), "history": (list,), "wall_seconds": (float,),
    "train_seconds": (float,), "timed_examples": (int,), "images_per_second": (float, None),
    "processes": (int,), "distribution": (dict,), "versions": (dict,),
    "converted_sites": (int,),
}
_BY_STATUS = {
    "finished": {"trainable_parameters": (int,), "test_error": (float,),
                 "test_loss": (float, None)},
    "diverged": {"diverged_at_step": (int,), "diverged_in_epoch": (int,), "message": (str,),
                 "test_error": (None,), "test_loss": (None,)},
}
# Optional keys: "distribution" came with the JAX backend (results.json
# files of earlier versions lack it; nothing stands in for it);
# "converted_sites" is there only for a converted model that is not a preset.
_ADDED = ("distribution", "converted_sites")


def problem_of(values):
    """The first way `values` is not results.json's object, or None."""
    status = values.get("status") if isinstance(values, dict) else None
    if isinstance(values, dict) and "status" in values and status not in STATUSES:
        return f"'status' is {status!r}, not one of {', '.join(STATUSES)}"
    problem = run_files.record_problem(values, {**_COMMON, **_BY_STATUS.get(status, {})},
                                       optional=_ADDED)
    return problem or _config_problem(values["config"]) or _range_problem(values)


def _config_problem(config):
    from keras_dropact.training import config as config_lib

    problem = run_files.record_problem(config, run_files.json_fields(config_lib.TrainConfig),
                                       optional=config_lib.ADDED_KEYS)
    return None if problem is None else f"its 'config' is no run configuration: {problem}"


def _range_problem(values):
    """The first value of the (well-typed) `values` out of its range, or None."""
    least = {"epochs_completed": 0, "optimizer_steps": 0, "timed_examples": 0, "processes": 1,
             "wall_seconds": 0, "train_seconds": 0, "trainable_parameters": 0,
             "diverged_at_step": 0, "diverged_in_epoch": 0, "test_loss": 0,
             "converted_sites": 1}
    for name, bound in least.items():
        if isinstance(values.get(name), (int, float)) and values[name] < bound:
            return f"{name!r} is {values[name]!r}, below {bound}"
    if values.get("test_error") is not None and not 0 <= values["test_error"] <= 1:
        return f"'test_error' is {values['test_error']!r}, not in [0, 1]"
    if values["images_per_second"] is not None and values["images_per_second"] <= 0:
        return f"'images_per_second' is {values['images_per_second']!r}, not positive"
    epochs = values["recipe"].get("epochs")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        return f"its recipe's 'epochs' is {epochs!r}, not a number of epochs"
    if not values["epochs_completed"] == len(values["history"]) <= epochs:
        return (f"'epochs_completed' is {values['epochs_completed']}, with "
                f"{len(values['history'])} history rows of a {epochs}-epoch recipe")
    if values["status"] == "diverged" and values["diverged_in_epoch"] > values["epochs_completed"]:
        return (f"'diverged_in_epoch' is {values['diverged_in_epoch']}, after the "
                f"{values['epochs_completed']} completed epochs")
    return history_problem(values["history"])


def read_results(run_dir):
    """The `Results` of the run in `run_dir`, or None when it has no
    results.json (it has not ended).

    Raises:
        RuntimeError: results.json is unreadable or not a run's results:
            one line naming it and the problem; it is left as it is.
    """
    path = os.path.join(run_dir, FILE)
    if not os.path.lexists(path):
        return None
    return run_files.read_record(path, "a run's results", FIX, Results.from_json)


def write_results(run_dir, results):
    """Writes `results` (a `Results`) as `run_dir`'s results.json (atomically)."""
    run_files.write_json(os.path.join(run_dir, FILE), results.to_json())
