"""Figure 2: test error against p, the probability of keeping the ReLU.

The paper trains its simple CNN on CIFAR-10 for p = 0.60, 0.65, ..., 1.00,
20 runs per p, and plots the mean test error with a 95% confidence interval;
the minimum is at p = 0.95. p = 1 is the plain ReLU network.
"""

import csv
import os

from keras_dropact.repro import plots
from keras_dropact.repro import runs
from keras_dropact.repro.stats import mean_ci
from keras_dropact.repro.stats import paired_difference

P_VALUES = tuple(round(0.60 + 0.05 * i, 2) for i in range(9))


def setup(dataset, scale, setup_name=None):
    """`(experiment directory, TrainConfig fields)` of Figure 2 on `dataset` at `scale`.

    At cpu scale `setup_name` picks one of `runs.CPU_SETUPS[dataset]`; the
    dataset's default setup keeps the directory `fig2/DATASET`, another
    writes to `fig2/DATASET-SETUP`.
    """
    if scale == "cpu":
        name, fields = runs.cpu_setup(dataset, setup_name)
        return runs.fig2_label(dataset, name), fields
    if setup_name is not None:
        raise ValueError(f"--setup is for --scale cpu; got --setup {setup_name!r} at --scale {scale}.")
    # The paper's setting: the simple CNN with the default recipe for it.
    return dataset, dict(model="simple-cnn")


def run(dataset, seeds, out, scale="cpu", p_values=P_VALUES, epochs=None, steps_per_epoch=None, verbose=0,
        setup_name=None):
    """Trains every (p, seed), writes the CSV and the plot; returns the rows.

    Seeds are the outer loop, so an interrupted sweep leaves every p with
    about the same number of runs.

    Returns:
        A list of dicts, one per p: p, n, mean and half width of the test
        error's 95% interval, its std, the per-seed errors, the paired
        difference to p = 1, and the mean and interval of the final
        training error (as `fit` logs it).
    """
    label, fields = setup(dataset, scale, setup_name)
    if epochs is not None:
        fields["epochs"] = epochs
    experiment = os.path.join("fig2", label)
    progress = runs.Progress("fig2", len(seeds) * len(p_values))
    errors = {p: [] for p in p_values}
    train_errors = {p: [] for p in p_values}
    for seed in seeds:
        for p in p_values:
            config = runs.make_config(
                out, experiment, f"p{p:.2f}", seed, dataset=dataset, activation="dropact",
                p=p, steps_per_epoch=steps_per_epoch, **fields,
            )
            progress.start()
            results, skipped = runs.train_classifier(config, scale, verbose=verbose)
            errors[p].append(results.test_error)
            train_errors[p].append(runs.logged_train_error(results))
            progress.finish(
                f"{fields['model']} on {dataset}, p={p:.2f}, seed {seed}",
                f"test error {100 * results.test_error:.2f}%", skipped,
            )
    rows = []
    for p in p_values:
        summary = mean_ci(errors[p])
        train = mean_ci(train_errors[p])
        # Runs of one seed share the initialisation and the data order, so
        # the difference to p = 1 (plain ReLU) is paired by seed.
        paired = paired_difference(errors[p], errors[1.0]).difference if 1.0 in errors else None
        rows.append(dict(p=p, n=summary.n, mean_error=summary.mean, ci95=summary.half_width,
                         std=summary.std, errors=errors[p],
                         diff_vs_relu=paired.mean if paired else float("nan"),
                         diff_ci95=paired.half_width if paired else float("nan"),
                         mean_train_error=train.mean, train_ci95=train.half_width))
    directory = os.path.join(out, experiment)
    write_csv(rows, os.path.join(directory, f"fig2-{label}.csv"))
    plots.fig2(rows, os.path.join(directory, f"fig2-{label}.png"),
               title=f"Figure 2: {fields['model']} on {dataset} ({len(seeds)} seeds per p)")
    return rows


def write_csv(rows, path):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["p", "n", "mean_test_error", "ci95_half_width", "std",
                         "paired_diff_vs_p1", "paired_diff_ci95_half_width", "test_errors",
                         "mean_final_train_error", "train_ci95_half_width"])
        for row in rows:
            writer.writerow([
                f"{row['p']:.2f}", row["n"], f"{row['mean_error']:.5f}", f"{row['ci95']:.5f}",
                f"{row['std']:.5f}", f"{row['diff_vs_relu']:.5f}", f"{row['diff_ci95']:.5f}",
                " ".join(f"{e:.5f}" for e in row["errors"]),
                f"{row['mean_train_error']:.5f}", f"{row['train_ci95']:.5f}",
            ])
