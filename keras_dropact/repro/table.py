"""Tables 1-6: baseline / RReLU / Drop-Activation test errors with 95% intervals.

`--scale paper` runs the paper's rows with their full recipes (GPU, days);
`--scale cpu` runs the same three columns on the offline datasets with the
small CPU setups, so the whole table runs on a laptop; there the
Drop-Activation column is Figure 2's run at the same p (the same
configuration, trained once: `runs.cpu_comparison_run`). Every cell is N
seeds; the Markdown table gives mean +- 95% t-interval half width (%), the
paper's single number where it has one, and the Drop-Activation minus
baseline difference paired by seed.
"""

import collections
import os

from keras_dropact.layers import DEFAULT_KEEP_PROBABILITY
from keras_dropact.repro import runs
from keras_dropact.repro.stats import format_ci
from keras_dropact.repro.stats import format_paired
from keras_dropact.repro.stats import markdown_table
from keras_dropact.repro.stats import mean_ci
from keras_dropact.repro.stats import paired_difference

Column = collections.namedtuple("Column", ["label", "activation", "augment"])
Row = collections.namedtuple("Row", ["table", "dataset", "model", "columns", "paper"])

_STANDARD = (Column("baseline", "relu", None), Column("RReLU", "rrelu", None),
             Column("Drop-Activation", "dropact", None))


def _augmented(augment):
    return (Column("baseline", "relu", None), Column(augment, "relu", augment),
            Column(f"{augment} + Drop-Activation", "dropact", augment))


# (table, dataset, model, paper baseline, RReLU, Drop-Activation), from the
# paper's Tables 1-6 (Section 4.3); None where the paper has "-".
_PAPER = [
    (1, "cifar100", "resnet-164", 25.16, 24.15, 23.88),
    (1, "cifar100", "preresnet-164", 24.33, 23.22, 22.72),
    (1, "cifar100", "wrn-28-10", 18.85, 19.63, 18.14),
    (1, "cifar100", "densenet-bc-100-12", 22.27, None, 21.71),
    (1, "cifar100", "densenet-bc-190-40", 17.18, None, 16.92),
    (1, "cifar100", "resnext-29-8x64d", 17.77, None, 17.68),
    (2, "cifar10", "resnet-110", 6.43, 7.66, 6.17),
    (2, "cifar10", "preresnet-164", 5.46, 5.33, 4.87),
    (2, "cifar10", "wrn-28-10", 3.89, 4.31, 3.74),
    (2, "cifar10", "densenet-bc-100-12", 4.51, None, 4.40),
    (2, "cifar10", "densenet-bc-190-40", 3.75, None, 3.45),
    (2, "cifar10", "resnext-29-8x64d", 3.65, None, 4.16),
    (3, "svhn", "wrn-16-8", 1.54, None, 1.46),
    (3, "svhn", "densenet-bc-100-12", 1.76, None, 1.71),
    (3, "svhn", "resnext-29-8x64d", 1.79, None, 1.69),
    (4, "emnist-balanced", "resnet-164", 8.85, None, 8.82),
    (4, "emnist-balanced", "preresnet-164", 8.88, None, 8.72),
    (4, "emnist-balanced", "wrn-28-10", 8.97, None, 8.72),
    (4, "emnist-balanced", "densenet-bc-100-12", 8.81, None, 8.90),
    (4, "emnist-balanced", "resnext-29-8x64d", 9.07, None, 8.91),
]
PAPER_ROWS = [Row(t, d, m, _STANDARD, tuple(numbers)) for t, d, m, *numbers in _PAPER] + [
    Row(5, "cifar100", "resnet-18", _augmented("cutout"), (22.46, 21.96, 20.99)),
    Row(5, "cifar100", "wrn-28-10", _augmented("cutout"), (18.8, 18.41, 17.86)),
    Row(6, "cifar100", "resnet-164", _augmented("autoaugment"), (25.16, 21.12, 20.39)),
    Row(6, "cifar100", "wrn-28-10", _augmented("autoaugment"), (18.85, 17.09, 16.20)),
]
# One row per CPU setup; a row's model is its setup's name.
CPU_ROWS = [Row("cpu", dataset, name, _STANDARD, (None, None, None))
            for dataset, setups in runs.CPU_SETUPS.items() for name in setups]


def select_rows(scale, patterns=(), setup=None):
    """The rows of `scale` whose "table dataset model" contains every pattern.

    `setup` (cpu scale) keeps only the row of that CPU setup.
    """
    if scale not in ("cpu", "paper"):
        raise ValueError(f"Invalid scale {scale!r}: valid scales are cpu, paper.")
    rows = CPU_ROWS if scale == "cpu" else PAPER_ROWS
    if setup is not None:
        setups = [r.model for r in CPU_ROWS]
        if scale != "cpu" or setup not in setups:
            raise ValueError(f"Unknown --setup {setup!r} for table at --scale {scale}: "
                             f"valid setups (--scale cpu) are {', '.join(setups)}.")
        rows = [r for r in rows if r.model == setup]
    chosen = [r for r in rows if all(p in f"{r.table} {r.dataset} {r.model}" for p in patterns)]
    if not chosen:
        raise ValueError(
            f"No {scale} table row matches {list(patterns)}; rows: "
            + "; ".join(f"{r.table} {r.dataset} {r.model}" for r in rows)
        )
    return chosen


def _fields(row, scale, epochs):
    if scale == "cpu":
        fields = runs.cpu_setup(row.dataset, row.model)[1]
    else:
        fields = dict(model=row.model)
    if epochs is not None:
        fields["epochs"] = epochs
    return fields


def run(seeds, out, scale="cpu", patterns=(), p=DEFAULT_KEEP_PROBABILITY, epochs=None, steps_per_epoch=None, verbose=0,
        setup=None):
    """Trains every (row, column, seed); writes and returns the Markdown tables.

    The file is `table-SCALE/table.md`, or `table-cpu/table-SETUP.md` for
    one `setup`. Below the test errors, a second table gives the final
    training errors (as `fit` logs them) of the same runs.
    """
    rows = select_rows(scale, patterns, setup)
    progress = runs.Progress("table", len(seeds) * sum(len(r.columns) for r in rows))
    errors = collections.defaultdict(dict)
    train_errors = collections.defaultdict(dict)
    for seed in seeds:
        for row in rows:
            fields = _fields(row, scale, epochs)
            experiment = os.path.join(f"table-{scale}", f"{row.model}-{row.dataset}")
            for column in row.columns:
                if scale == "cpu":
                    config = runs.cpu_comparison_run(
                        out, row.dataset, row.model, column.activation, p, seed,
                        steps_per_epoch=steps_per_epoch, **fields,
                    )
                else:
                    name = column.activation + (f"-{column.augment}" if column.augment else "")
                    config = runs.make_config(
                        out, experiment, name, seed, dataset=row.dataset, activation=column.activation,
                        p=p, augment=column.augment, steps_per_epoch=steps_per_epoch, **fields,
                    )
                progress.start()
                results, skipped = runs.train_classifier(config, scale, verbose=verbose)
                errors[row].setdefault(column, {})[seed] = results.test_error
                train_errors[row].setdefault(column, {})[seed] = runs.logged_train_error(results)
                progress.finish(f"{row.model} on {row.dataset}, {column.label}, seed {seed}",
                                f"test error {100 * results.test_error:.2f}%", skipped)
    text = markdown(rows, errors, seeds) + "\n" + markdown(
        rows, train_errors, seeds, what="Final training error (the last epoch's, as `fit` logs it: "
        "random masks for Drop-Activation and RReLU)", paper=False)
    directory = os.path.join(out, f"table-{scale}")
    with open(os.path.join(directory, f"table-{setup}.md" if setup else "table.md"), "w") as f:
        f.write(text)
    print(text, flush=True)
    return text


def markdown(rows, errors, seeds, what="Test error", paper=True):
    """The table: per column our mean +- 95% CI (%) and the paper's number.

    The column headers are the first row's column labels; a cell of a row
    whose columns differ (Tables 5-6: augmentations) names its own column.
    `paper=False` leaves out the paper's columns (for training errors).
    """
    labels = [column.label for column in rows[0].columns]
    header = ["table", "dataset", "model", "seeds"]
    for label in labels:
        header += [f"{label} (ours)", "paper"] if paper else [f"{label} (ours)"]
    header.append(f"{labels[-1]} - {labels[0]}, paired (ours)")
    cells_of_rows = []
    for row in rows:
        cells = [str(row.table), row.dataset, row.model, str(len(seeds))]
        for column, label, number in zip(row.columns, labels, row.paper):
            ours = format_ci(mean_ci([errors[row][column][s] for s in seeds]))
            cells.append(ours if column.label == label else f"{column.label}: {ours}")
            if paper:
                cells.append("-" if number is None else f"{number:.2f}")
        base = [errors[row][row.columns[0]][s] for s in seeds]
        drop = [errors[row][row.columns[-1]][s] for s in seeds]
        cells.append(format_paired(paired_difference(drop, base)))
        cells_of_rows.append(cells)
    note = (f"\n{what} in %, mean +- half width of the 95% Student-t interval over the seeds"
            + ("; the paper reports single numbers.\n" if paper else ".\n"))
    return markdown_table(header, cells_of_rows) + note
