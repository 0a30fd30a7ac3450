"""Figures 4 and 6: error curves and the shift ratio during training.

Figure 4 trains a model with ReLU and with Drop-Activation (`train`, N seeds
each) and plots the mean training and test error per epoch. At cpu scale the
runs of a CPU setup are the table's (`runs.cpu_comparison_run`: the same
configuration and directory), trained once between them. Figure 6 trains
the Drop-Activation model with a `ShiftRatioMonitor` on one layer (the
paper: the output of ResNet-164's second stage) and plots
Var(X_test) / Var(X_train) per epoch next to eq. (15)'s value and 1.
"""

import csv
import os

import numpy as np

from keras_dropact.layers import DEFAULT_KEEP_PROBABILITY
from keras_dropact import theory
from keras_dropact.callbacks import ShiftRatioMonitor
from keras_dropact.repro import plots
from keras_dropact.repro import runs

# The monitored layer when --layer is not given: for simple-cnn the third
# convolution, whose input is the (pooled) Drop-Activation output of block 2,
# i.e. X = w . DropAct(x) of Property 5.2; otherwise the last layer of stage 2.
DEFAULT_LAYERS = {"simple-cnn": "block3_conv"}


def _fields(model, dataset, scale, epochs, steps_per_epoch, setup=None):
    if scale == "cpu" and (dataset in runs.CPU_SETUPS or setup is not None):
        fields = runs.cpu_setup(dataset, setup)[1]
        fields["model"] = model or fields["model"]
    else:
        fields = dict(model=model or "resnet-164")
    if epochs is not None:
        fields["epochs"] = epochs
    fields["steps_per_epoch"] = steps_per_epoch
    return fields


def run_fig4(model, dataset, seeds, out, scale="cpu", p=DEFAULT_KEEP_PROBABILITY, epochs=None, steps_per_epoch=None, verbose=0,
             setup=None):
    """Mean training/test error per epoch, ReLU vs Drop-Activation.

    `setup` picks a CPU setup of `dataset` (`runs.CPU_SETUPS`).
    """
    fields = _fields(model, dataset, scale, epochs, steps_per_epoch, setup)
    shared = (scale == "cpu" and dataset in runs.CPU_SETUPS
              and model in (None, runs.cpu_setup(dataset, setup)[1]["model"]))
    experiment = os.path.join("fig4", f"{fields['model']}-{dataset}")
    progress = runs.Progress("fig4", 2 * len(seeds))
    histories = {"relu": [], "dropact": []}
    for seed in seeds:
        for activation in histories:
            if shared:
                # Literally the table's ReLU and Drop-Activation runs (same
                # configuration, same directory): trained once, used by both.
                config = runs.cpu_comparison_run(out, dataset, runs.cpu_setup(dataset, setup)[0],
                                                 activation, p, seed, **fields)
            else:
                name = activation if activation == "relu" else f"dropact-p{p:.2f}"
                config = runs.make_config(out, experiment, name, seed, dataset=dataset,
                                          activation=activation, p=p, **fields)
            progress.start()
            results, skipped = runs.train_classifier(config, scale, verbose=verbose)
            histories[activation].append(results.history)
            progress.finish(f"{fields['model']} on {dataset}, {activation}, seed {seed}",
                            f"test error {100 * results.test_error:.2f}%", skipped)
    directory = os.path.join(out, experiment)
    os.makedirs(directory, exist_ok=True)
    curves = {activation: mean_error_curves(h) for activation, h in histories.items()}
    rows = [(activation, int(epoch), train, test) for activation, (epochs, train_error, test_error)
            in curves.items() for epoch, train, test in zip(epochs, train_error, test_error)]
    with open(os.path.join(directory, "fig4.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["activation", "epoch", "mean_train_error", "mean_test_error"])
        writer.writerows([(a, e, f"{tr:.5f}", f"{te:.5f}") for a, e, tr, te in rows])
    plots.curves(error_curve_series(curves), os.path.join(directory, "fig4.png"), "error (%)",
                 f"Figure 4: {fields['model']} on {dataset}, mean of {len(seeds)} seeds")
    return rows


def mean_error_curves(histories):
    """The mean training and test error per epoch over runs (Figure 4's curves).

    Args:
        histories: the `history` of each run's results: one row per epoch,
            with `accuracy` (the training accuracy as `fit` logged it: random
            masks, augmentation) and `val_accuracy` (the test split).

    Returns:
        `(epochs, train_error, test_error)`: epochs 1..E, E the fewest any run
        finished, and the two mean errors (fractions) per epoch.
    """
    epochs_done = min(len(h) for h in histories)
    train_error = np.mean([[1 - h[e]["accuracy"] for e in range(epochs_done)] for h in histories], axis=0)
    test_error = np.mean([[1 - h[e]["val_accuracy"] for e in range(epochs_done)] for h in histories], axis=0)
    return np.arange(1, epochs_done + 1), train_error, test_error


def error_curve_series(curves):
    """`plots.curves`' series (in %) of `mean_error_curves` by label: one colour
    per label, the test error solid, the training error (as `fit` logged it) dashed."""
    series = {}
    for index, (label, (epochs, train_error, test_error)) in enumerate(curves.items()):
        series[f"{label} test"] = (epochs, 100 * np.asarray(test_error), f"C{index}-")
        series[f"{label} train (as fit logged it)"] = (epochs, 100 * np.asarray(train_error), f"C{index}--")
    return series


def run_fig6(model, dataset, seeds, out, scale="cpu", p=DEFAULT_KEEP_PROBABILITY, layer=None, epochs=None,
             steps_per_epoch=None, verbose=0):
    """The shift ratio of `layer` per epoch for Drop-Activation runs."""
    from keras_dropact import pipelines

    fields = _fields(model, dataset, scale, epochs, steps_per_epoch)
    experiment = os.path.join("fig6", f"{fields['model']}-{dataset}")
    batch = next(iter(pipelines.load(dataset, "train", 256, shuffle=False)))[0]
    progress = runs.Progress("fig6", len(seeds))
    ratios = []
    for seed in seeds:
        config = runs.make_config(out, experiment, f"dropact-p{p:.2f}", seed, dataset=dataset,
                                  activation="dropact", p=p, **fields)
        monitor = _Stage2Monitor(layer or DEFAULT_LAYERS.get(fields["model"]), batch)
        progress.start()
        results, skipped = runs.train_classifier(config, scale, callbacks=[monitor], verbose=verbose)
        ratios.append([row["shift_ratio"] for row in results.history])
        progress.finish(f"{fields['model']} on {dataset}, seed {seed}",
                        f"final shift ratio {ratios[-1][-1]:.3f}", skipped)
    directory = os.path.join(out, experiment)
    epochs_done = min(len(r) for r in ratios)
    mean = np.mean([r[:epochs_done] for r in ratios], axis=0)
    with open(os.path.join(directory, "fig6.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "mean_shift_ratio", *(f"seed_{s}" for s in seeds)])
        for e in range(epochs_done):
            writer.writerow([e + 1, f"{mean[e]:.5f}", *(f"{r[e]:.5f}" for r in ratios)])
    plots.curves({"shift ratio (mean over seeds)": (np.arange(1, epochs_done + 1), mean, "C0-o")},
                 os.path.join(directory, "fig6.png"), "Var(X_test) / Var(X_train)",
                 f"Figure 6: {fields['model']} on {dataset}, p={p}",
                 hlines=[(1.0, "1"), (theory.shift_ratio(p), f"eq. (15): {theory.shift_ratio(p):.4f}")])
    return mean


class _Stage2Monitor(ShiftRatioMonitor):
    """`ShiftRatioMonitor` whose layer defaults to the model's last `stage2*` layer."""

    def __init__(self, layer_name, x_batch):
        super().__init__(layer_name or "", x_batch)
        self._default = layer_name is None

    def on_train_begin(self, logs=None):
        if self._default:
            stage2 = [layer.name for layer in self.model.layers if layer.name.startswith("stage2")]
            if not stage2:
                raise ValueError(
                    f"Model {self.model.name!r} has no layer named stage2*: pass --layer "
                    f"(its layers include {', '.join(l.name for l in self.model.layers[:10])}, ...)."
                )
            self.layer_name = stage2[-1]
        super().on_train_begin(logs)
