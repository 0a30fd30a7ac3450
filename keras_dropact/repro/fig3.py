"""Figure 3: regression with the 1000-800-200 MLP, ReLU against Drop-Activation.

20 training points, x ~ U[0, 10], y = f(x) + N(0, 1), for f(x) = x sin x and
for a piecewise constant f. Each seed draws its own 20 points and both
activations train on the same points from the same initialisation seed, so
the comparison is paired. The test MSE is against the noiseless f on a
dense grid of [0, 10]. `train` classifies with cross-entropy, so this module
fits the regression with `model.fit` and the MSE loss.

Training (the paper gives none of it; our choice): full batch (all 20
points), Adam with learning rate 1e-3, `STEPS` = 1000 steps. Each fit is
recorded in `OUT/fig3/NAME/seed-N/regression.json` (`FILE`) and read back,
checked, instead of fitted again.
"""

import csv
import os

import keras
import numpy as np

from keras_dropact.layers import DEFAULT_KEEP_PROBABILITY
from keras_dropact.repro import plots
from keras_dropact.repro import runs
from keras_dropact.repro.stats import mean_ci
from keras_dropact.repro.stats import paired_difference
from keras_dropact.training import run_files

NUM_POINTS = 20
GRID = np.linspace(0.0, 10.0, 1001)
STEPS = 1000
LEARNING_RATE = 1e-3
# Piecewise constant: one level per interval [0, 2), [2, 4), ..., [8, 10].
LEVELS = (2.0, -3.0, 4.0, 0.0, -5.0)
# One fit's record (`fit_regression`), and the kinds of its values.
FILE = "regression.json"
FIELDS = {"function": (str,), "activation": (str,), "p": (float,), "seed": (int,),
          "steps": (int,), "final_training_loss": (float, None), "train_mse": (float, None),
          "test_mse": (float, None), "grid_prediction": (list,)}


def x_sin_x(x):
    return x * np.sin(x)


def piecewise_constant(x):
    return np.asarray(LEVELS)[np.clip((np.asarray(x) // 2).astype(int), 0, len(LEVELS) - 1)]


FUNCTIONS = {"xsinx": (x_sin_x, "y = x sin x"), "piecewise": (piecewise_constant, "piecewise constant")}
COMPARED = ("relu", "dropact")


def make_data(function, seed):
    """The 20 noisy training points of `seed` (x sorted)."""
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(0.0, 10.0, NUM_POINTS))
    y = FUNCTIONS[function][0](x) + rng.normal(0.0, 1.0, NUM_POINTS)
    return x.astype(np.float32), y.astype(np.float32)


def fit_regression(function, activation, p, seed, steps=STEPS):
    """Trains the `mlp` preset on `make_data(function, seed)`; returns results."""
    from keras_dropact import models

    x, y = make_data(function, seed)
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = models.build("mlp", activation=activation, p=p, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss="mse")
    # One epoch = `per_epoch` full-batch steps (the points tiled), so Keras'
    # per-epoch overhead is paid steps / per_epoch times, not `steps` times.
    per_epoch = min(steps, 100)
    tiled_x = np.tile(x[:, None], (per_epoch, 1))
    tiled_y = np.tile(y[:, None], (per_epoch, 1))
    history = model.fit(tiled_x, tiled_y, batch_size=NUM_POINTS, epochs=max(steps // per_epoch, 1),
                        shuffle=False, verbose=0)
    prediction = model.predict(GRID[:, None].astype(np.float32), batch_size=1024, verbose=0)[:, 0]
    truth = FUNCTIONS[function][0](GRID)
    train_prediction = model.predict(x[:, None], verbose=0)[:, 0]
    return {
        "function": function, "activation": activation, "p": p, "seed": seed, "steps": steps,
        "final_training_loss": float(history.history["loss"][-1]),
        "train_mse": float(np.mean((train_prediction - y) ** 2)),
        "test_mse": float(np.mean((prediction - truth) ** 2)),
        "grid_prediction": [float(v) for v in prediction],
    }


def _parse(values):
    problem = run_files.record_problem(values, FIELDS)
    if problem is not None:
        raise ValueError(problem)
    return values


def load_fit(path):
    """The fit recorded in `path`'s `FILE`, or None when there is none.

    Raises:
        RuntimeError: the file is damaged (one line naming it).
    """
    file = os.path.join(path, FILE)
    if not os.path.lexists(file):
        return None
    return run_files.read_record(file, "a Figure 3 fit", "Delete it to fit again.", _parse)


def write_fit(path, fit):
    """Records `fit` in `path`'s `FILE` (atomically)."""
    os.makedirs(path, exist_ok=True)
    run_files.write_json(os.path.join(path, FILE), fit)


def run(seeds, out, p=DEFAULT_KEEP_PROBABILITY, steps=STEPS, verbose=0):
    """Every (function, activation, seed); writes CSV and plot, returns the rows."""
    experiment = "fig3"
    progress = runs.Progress("fig3", len(seeds) * len(FUNCTIONS) * len(COMPARED))
    results = {}
    for seed in seeds:
        for function in FUNCTIONS:
            for activation in COMPARED:
                name = f"{function}-{activation}" + (f"-p{p:.2f}" if activation == "dropact" else "")
                path = runs.run_dir(out, experiment, name, seed)
                progress.start()
                result = load_fit(path)
                skipped = result is not None
                if not skipped:
                    result = fit_regression(function, activation, p, seed, steps)
                    write_fit(path, result)
                results[function, activation, seed] = result
                progress.finish(f"{function}, {activation}, seed {seed}",
                                f"test MSE {result['test_mse']:.3f}", skipped)
    rows = []
    for function in FUNCTIONS:
        for activation in COMPARED:
            test = [results[function, activation, s]["test_mse"] for s in seeds]
            train = [results[function, activation, s]["train_mse"] for s in seeds]
            summary = mean_ci(test)
            rows.append(dict(function=function, activation=activation, n=summary.n,
                             mean_test_mse=summary.mean, ci95=summary.half_width,
                             mean_train_mse=float(np.mean(train))))
        # Paired by seed: same points, same initialisation seed.
        difference = paired_difference([results[function, "dropact", s]["test_mse"] for s in seeds],
                                       [results[function, "relu", s]["test_mse"] for s in seeds]).difference
        rows.append(dict(function=function, activation="dropact - relu (paired)", n=difference.n,
                         mean_test_mse=difference.mean, ci95=difference.half_width,
                         mean_train_mse=float("nan")))
    directory = os.path.join(out, experiment)
    with open(os.path.join(directory, "fig3.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["function", "activation", "n", "mean_test_mse", "ci95_half_width", "mean_train_mse"])
        for row in rows:
            writer.writerow([row["function"], row["activation"], row["n"], f"{row['mean_test_mse']:.4f}",
                             f"{row['ci95']:.4f}", f"{row['mean_train_mse']:.4f}"])
    seed = seeds[0]
    panels = []
    for function, (f, title) in FUNCTIONS.items():
        x, y = make_data(function, seed)
        panels.append(dict(
            title=f"{title} (seed {seed}, {NUM_POINTS} points)", grid=GRID, truth=f(GRID), x=x, y=y,
            fits={("ReLU" if a == "relu" else f"Drop-Activation p={p}"):
                  results[function, a, seed]["grid_prediction"] for a in COMPARED},
        ))
    plots.fig3(panels, os.path.join(directory, "fig3.png"))
    return rows
