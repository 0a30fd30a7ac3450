"""Resumable runs for the reproduction experiments.

Every run lives in its own directory `OUT/EXPERIMENT/CONFIG/seed-N` and is
finished when its `results.json` exists; finished runs are read back, never
redone, so an interrupted command picks up where it stopped.

Paper-scale runs (hours each) are trained by `keras_dropact.training.train`,
whose backups let a half-finished run resume mid-way. CPU-scale runs take
seconds, so resuming inside one is worth nothing while `train`'s per-run
costs (a backup every 50 steps, a checkpoint per epoch, TensorBoard logs,
the saved model) would be a large part of them: they go through `fit`, the
same model, compilation, recipe schedule and data as `train`
(`build_model`, `compile_model`, `RecipeLearningRate`, `pipelines.load`)
in one `model.fit` call, restarting from epoch 0 if interrupted. `fit` also
serves what `train` cannot: a model that is not a `models` preset
(`mlp-1d`, below) and extra callbacks (Figure 6's `ShiftRatioMonitor`).
"""

import json
import os
import time

import keras

from keras_dropact.training.config import TrainConfig

RESULTS = "results.json"

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
    import models

    inputs = keras.Input(info["shape"])
    flat = keras.layers.Flatten(name="flatten")(inputs)
    size = int(flat.shape[-1])
    body = models.mlp(
        hidden=MLP_1D_HIDDEN,
        input_shape=(size,),
        num_classes=info["num_classes"],
        activation=config.activation,
        p=config.p,
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
    tmp = os.path.join(path, RESULTS + ".tmp")
    with open(tmp, "w") as f:
        json.dump(results, f, indent=2)
    os.replace(tmp, os.path.join(path, RESULTS))


def train_classifier(config, scale, callbacks=(), verbose=0):
    """Trains `config` into `config.run_dir` unless it has finished there.

    Returns `(results, skipped)`. At `scale="paper"`, presets with no extra
    callbacks go through `keras_dropact.training.train` (resumed if
    started); everything else through `fit` (see the module docstring).
    """
    results = load_results(config.run_dir)
    if results is not None:
        return results, True
    keras.backend.clear_session()
    if scale != "paper" or config.model in LOCAL_MODELS or callbacks:
        results = fit(config, callbacks=callbacks, verbose=verbose)
    else:
        from keras_dropact.training.train import train

        started = os.path.isfile(os.path.join(config.run_dir, "config.json"))
        results = train(config, resume=started, verbose=verbose)
    return results, False


def fit(config, callbacks=(), verbose=0):
    """`model.fit` with the recipe of `config`, for what `train` can't run.

    Builds the model (`LOCAL_MODELS` or a `models` preset), compiles and
    schedules it exactly as `train` does, trains with `callbacks` added and
    writes `results.json` with the same keys the experiments read
    (`test_error`, `test_loss`, `history`). No backups: an interrupted run
    restarts from epoch 0 (these runs take seconds).
    """
    import pipelines
    from keras_dropact.training import train as training
    from keras_dropact.training.schedule import RecipeLearningRate

    os.makedirs(config.run_dir, exist_ok=True)
    config.save(os.path.join(config.run_dir, "config.json"))
    info = pipelines.info(config.dataset)
    recipe = config.resolved_recipe()
    keras.utils.set_random_seed(config.seed)
    train_data = pipelines.load(
        config.dataset, "train", recipe.batch_size, augment=training.augmentation(config, info),
        data_dir=config.data_dir, shuffle=True, seed=config.seed,
    )
    test_data = pipelines.load(config.dataset, "test", recipe.batch_size, data_dir=config.data_dir)
    if config.model in LOCAL_MODELS:
        model = LOCAL_MODELS[config.model](config, info, recipe)
    else:
        model = training.build_model(config, info)
    training.compile_model(model, recipe)
    start = time.perf_counter()
    history = model.fit(
        train_data,
        validation_data=test_data,
        epochs=recipe.epochs,
        steps_per_epoch=config.steps_per_epoch,
        shuffle=False,  # The pipeline shuffles.
        callbacks=[RecipeLearningRate(recipe), *callbacks],
        verbose=verbose,
    )
    wall_seconds = time.perf_counter() - start
    test_loss, test_accuracy = model.evaluate(test_data, verbose=0)
    logs = history.history
    epochs = len(next(iter(logs.values())))
    results = {
        "config": config.to_dict(),
        "trainable_parameters": int(sum(int(keras.ops.size(w)) for w in model.trainable_weights)),
        "test_error": float(1.0 - test_accuracy),
        "test_loss": float(test_loss),
        "epochs_completed": epochs,
        "history": [
            {"epoch": i, **{k: float(v[i]) for k, v in logs.items()}} for i in range(epochs)
        ],
        "wall_seconds": wall_seconds,
    }
    write_results(config.run_dir, results)
    return results


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
