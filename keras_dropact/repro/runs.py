"""Resumable runs for the reproduction experiments.

Every run lives in its own directory `OUT/EXPERIMENT/CONFIG/seed-N` and is
finished when its `results.json` exists; finished runs are read back, never
redone, so an interrupted command picks up where it stopped.

Every classifier run goes through `keras_dropact.training.train`, the one
training path. Paper-scale runs (hours each) keep its backups, so a
half-finished run resumes mid-way. CPU-scale runs take seconds: they are
`light` (no backup, checkpoint, TensorBoard log or saved model, whose costs
would be a large part of such a run) and restart from epoch 0 if
interrupted.
"""

import json
import os
import time

import keras

from keras_dropact import models
from keras_dropact.layers import get_act_layer
from keras_dropact.training.config import TrainConfig
from keras_dropact.training.run_dir import RESULTS
from keras_dropact.training.run_dir import write_json
from keras_dropact.training.train import train

# The CPU-scale setups: offline data, small networks, a few seconds a run.
# `simple-cnn` is the Figure 2 network (8x8 digits pool down to 1x1);
# MNIST-1D signals are (40, 1), which neither `simple-cnn` (2-D) nor the
# `mlp` preset (flat input) takes, so it gets `mlp-1d` (flatten + MLP).
CPU_SETUPS = {
    "digits": dict(model="simple-cnn", epochs=12, batch_size=64),
    "mnist1d": dict(model="mlp-1d", epochs=12, batch_size=64),
}

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


def load_results(path):
    """The run's results dict, or None if it has not finished.

    A results file cut short by a kill counts as unfinished.
    """
    results_path = os.path.join(path, RESULTS)
    if not os.path.isfile(results_path):
        return None
    try:
        with open(results_path) as f:
            return json.load(f)
    except ValueError:
        return None


def write_results(path, results):
    """Writes `results.json` atomically (a kill never leaves half a file)."""
    os.makedirs(path, exist_ok=True)
    write_json(os.path.join(path, RESULTS), results)


def train_classifier(config, scale, callbacks=(), verbose=0):
    """Trains `config` into `config.run_dir` unless it has finished there.

    Returns `(results, skipped)`. Runs at `scale="cpu"` are light (see the
    module docstring); a run that started but did not finish is resumed.
    """
    results = load_results(config.run_dir)
    if results is not None:
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
    """Prints one line per run: count, what ran, its result, time and ETA."""

    def __init__(self, experiment, total):
        self.experiment = experiment
        self.total = total
        self.done = 0
        self.trained = 0
        self.train_seconds = 0.0
        self._start = None

    def start(self):
        self._start = time.perf_counter()

    def finish(self, label, result_text, skipped):
        self.done += 1
        seconds = time.perf_counter() - self._start
        if skipped:
            status = "done before, skipped"
        else:
            self.trained += 1
            self.train_seconds += seconds
            status = f"{seconds:.1f}s"
        remaining = self.total - self.done
        eta = ""
        if self.trained and remaining:
            eta = f", ETA {remaining * self.train_seconds / self.trained / 60:.1f} min"
        print(
            f"[{self.experiment} {self.done}/{self.total}] {label}: {result_text} ({status}{eta})",
            flush=True,
        )
