"""Resumable runs for the reproduction experiments.

Every run lives in its own directory `OUT/EXPERIMENT/CONFIG/seed-N` and is
finished when its `results.json` exists; finished runs are read back
(`keras_dropact.training.results.read_results`, checked), never redone, so
an interrupted command picks up where it stopped.

Every classifier run goes through `keras_dropact.training.train`, the one
training path. Paper-scale runs (hours each) keep its backups, so a
half-finished run resumes mid-way. CPU-scale runs take seconds: they are
`light` (no backup, checkpoint, TensorBoard log or saved model, whose costs
would be a large part of such a run) and restart from epoch 0 if
interrupted.
"""

import os
import time

import keras

from keras_dropact import models
from keras_dropact.layers import get_act_layer
from keras_dropact.training.config import ADDED_KEYS
from keras_dropact.training.config import TrainConfig
from keras_dropact.training.results import read_results
from keras_dropact.training.train import train

# The CPU-scale setups: offline data and small networks, by dataset and
# setup name (the first setup of a dataset is its default). `simple-cnn` is
# the Figure 2 network (8x8 digits pool down to 1x1); `mlp-1d` flattens
# MNIST-1D's (40, 1) signals into an MLP (the first MNIST-1D setup, 12
# epochs). `mnist1d-mlp` and `mnist1d-cnn` are MNIST-1D's reference networks
# with its own recipe (`recipes.RECIPES["mnist1d"]`: Adam 1e-2, batch 100,
# 6000 steps); `simple-cnn-1d` is Figure 2's network (with BatchNorm) in 1-D
# with the CPU recipe of the other setups.
_QUICK = dict(epochs=12, batch_size=64)
CPU_SETUPS = {
    "digits": {"simple-cnn": dict(model="simple-cnn", **_QUICK)},
    "mnist1d": {
        "mlp-1d": dict(model="mlp-1d", **_QUICK),
        "mnist1d-mlp": dict(model="mnist1d-mlp", recipe="mnist1d"),
        "mnist1d-cnn": dict(model="mnist1d-cnn", recipe="mnist1d"),
        "simple-cnn-1d": dict(model="simple-cnn-1d", **_QUICK),
    },
}


def cpu_setup(dataset, setup=None):
    """`(name, TrainConfig fields)` of CPU setup `setup` (default: the dataset's first).

    Raises a ValueError naming the valid datasets or setups.
    """
    if dataset not in CPU_SETUPS:
        raise ValueError(
            f"--scale cpu runs on offline data: dataset must be one of "
            f"{', '.join(CPU_SETUPS)}, got {dataset!r}."
        )
    setups = CPU_SETUPS[dataset]
    if setup is None:
        setup = next(iter(setups))
    if setup not in setups:
        raise ValueError(
            f"Unknown --setup {setup!r} for {dataset}: valid setups are {', '.join(setups)}."
        )
    return setup, dict(setups[setup])


def is_default_setup(dataset, setup):
    """True for the dataset's first setup (whose output paths predate `--setup`)."""
    return setup == next(iter(CPU_SETUPS[dataset]))


def fig2_label(dataset, setup):
    """Figure 2's name for a CPU setup: `DATASET` for the default, else `DATASET-SETUP`."""
    return dataset if is_default_setup(dataset, setup) else f"{dataset}-{setup}"


def cpu_comparison_run(out, dataset, setup, activation, p, seed, **fields):
    """The config of a CPU setup's ReLU / RReLU / Drop-Activation run (table, Figure 4).

    The Drop-Activation run is Figure 2's run at the same p (literally the
    same configuration, so it lives in Figure 2's directory and is trained
    once); ReLU and RReLU runs live in `table-cpu/MODEL-DATASET/ACTIVATION`.
    """
    model = fields["model"]
    if activation == "dropact":
        experiment, name = os.path.join("fig2", fig2_label(dataset, setup)), f"p{p:.2f}"
    else:
        experiment, name = os.path.join("table-cpu", f"{model}-{dataset}"), activation
    return make_config(out, experiment, name, seed, dataset=dataset, activation=activation, p=p, **fields)


# Hidden widths of `mlp-1d`, our choice (the paper has no MNIST-1D model).
MLP_1D_HIDDEN = (512, 256)


def build_mlp_1d(config, info, recipe):
    """`mlp-1d`: flatten a (length, channels) signal, then the `mlp` family.

    The MLP of Figure 3 (`models.mlp`) with hidden widths `MLP_1D_HIDDEN`
    and one logit per class; the activation sites are the MLP's.
    """

    inputs = keras.Input(info["shape"])
    flat = keras.layers.Flatten(name="flatten")(inputs)
    size = int(flat.shape[-1])
    body = models.mlp(
        hidden=MLP_1D_HIDDEN,
        input_shape=(size,),
        num_classes=info["num_classes"],
        act_layer=get_act_layer(config.activation, config.p),
        seed=config.seed,
        weight_decay=recipe.weight_decay,
        name="mlp",
    )
    return keras.Model(inputs, body(flat), name="mlp-1d")


LOCAL_MODELS = {"mlp-1d": build_mlp_1d}


def run_dir(out, experiment, name, seed):
    """`OUT/EXPERIMENT/NAME/seed-SEED`, the one directory of a run."""
    return os.path.join(out, experiment, name, f"seed-{seed}")


def logged_train_error(results):
    """The last epoch's training error as `fit` logged it: its running average
    over the epoch's steps, in training mode (random masks, augmentation)."""
    return 1.0 - results["history"][-1]["accuracy"]


# The TrainConfig fields that define what a run trains (not where or how it
# is logged): a finished run is reused only if they all match (a run of an
# earlier version has the `ADDED_KEYS` value of those it lacks).
RUN_FIELDS = ("model", "dataset", "activation", "p", "augment", "recipe", "epochs", "batch_size", "lr",
              "weight_decay", "dropout", "seed", "steps_per_epoch", "mixed_precision",
              "momentum_convention", "model_kwargs", "weights", "convert_activation", "channels",
              "model_sha256", "weights_sha256")


def check_same_run(config, results):
    """Raises a ValueError unless `results` (or `{"config": ...}` of a started
    run's config.json) are of a run of `config`.

    Guards the reuse of a run: two experiments (e.g. the table and Figure 4)
    share a directory only for literally the same run.
    """
    done = {**ADDED_KEYS, **results["config"]}
    differ = [f"{name}: {done.get(name)!r} there, {getattr(config, name)!r} asked"
              for name in RUN_FIELDS if done.get(name) != getattr(config, name)]
    if differ:
        raise ValueError(
            f"{config.run_dir} holds a run of another configuration ({'; '.join(differ)}); "
            f"use another --out."
        )


def train_classifier(config, scale, callbacks=(), verbose=0):
    """Trains `config` into `config.run_dir` unless it has finished there.

    Returns `(results, skipped)`, `results` a `training.results.Results`.
    Runs at `scale="cpu"` are light (see the module docstring); a run that
    started but did not finish is resumed. A finished run is reused only if
    it is a run of `config` (`check_same_run`).

    Raises:
        RuntimeError: the run's results.json is damaged (one line naming it).
    """
    results = read_results(config.run_dir)
    if results is not None:
        check_same_run(config, results)
        return results, True
    keras.backend.clear_session()
    config.light = scale != "paper"
    started = os.path.isfile(os.path.join(config.run_dir, "config.json"))
    results = train(
        config,
        resume=started,
        verbose=verbose,
        callbacks=callbacks,
        model_builder=LOCAL_MODELS.get(config.model),
    )
    return results, False


def make_config(out, experiment, name, seed, **fields):
    """A `TrainConfig` whose run directory is `run_dir(out, experiment, name, seed)`."""
    return TrainConfig(seed=seed, run_dir=run_dir(out, experiment, name, seed), **fields)


class Progress:
    """Prints one line per run: count, what ran, its result, its time, the
    time elapsed and an estimate of the time left (from the runs trained so
    far; finished runs that were skipped cost nothing)."""

    def __init__(self, experiment, total):
        self.experiment = experiment
        self.total = total
        self.done = 0
        self.trained = 0
        self.train_seconds = 0.0
        self.began = time.perf_counter()
        self._start = None

    def prefix(self):
        """`[EXPERIMENT k/N]` of the run under way (k = runs done + 1)."""
        return f"[{self.experiment} {self.done + 1}/{self.total}]"

    def start(self):
        self._start = time.perf_counter()

    def finish(self, label, result_text, skipped):
        prefix = self.prefix()
        self.done += 1
        seconds = time.perf_counter() - self._start
        if skipped:
            status = "done before, skipped"
        else:
            self.trained += 1
            self.train_seconds += seconds
            status = f"{seconds:.1f}s"
        status += f"; {(time.perf_counter() - self.began) / 60:.1f} min elapsed"
        remaining = self.total - self.done
        if self.trained and remaining:
            status += f", about {remaining * self.train_seconds / self.trained / 60:.1f} min left"
        print(f"{prefix} {label}: {result_text} ({status})", flush=True)
