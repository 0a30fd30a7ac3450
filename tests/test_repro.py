"""`dropact repro`: tiny versions of every experiment (one seed, a few steps)."""

import csv
import json
import math
import os

import numpy as np
import pytest

from conftest import tensorflow_only
from keras_dropact import cli
from keras_dropact.repro import fig3
from keras_dropact.repro import table
from keras_dropact.repro.stats import format_ci
from keras_dropact.repro.stats import format_paired
from keras_dropact.repro.stats import mean_ci
from keras_dropact.repro.stats import paired_difference

TINY = ["--seeds", "1", "--epochs", "1", "--steps-per-epoch", "2"]


def repro(out, *args):
    assert cli.main(["repro", *args, "--out", str(out)]) == 0


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def run_results(path):
    """The results.json of the run directory `path`."""
    with open(path / "results.json") as f:
        return json.load(f)


def test_mean_ci_uses_the_t_distribution():
    summary = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    assert summary.mean == 3.0 and summary.n == 5
    assert summary.std == pytest.approx(math.sqrt(2.5))
    # t_{0.975, 4} = 2.7764, not the normal 1.96.
    assert summary.half_width == pytest.approx(2.7764 * math.sqrt(2.5) / math.sqrt(5), rel=1e-4)
    assert format_ci(mean_ci([0.1, 0.2])) == "15.00 +- 63.53"


def test_mean_ci_of_one_run_has_no_interval_and_bad_input_fails():
    single = mean_ci([0.25])
    assert single.mean == 0.25 and math.isnan(single.half_width)
    assert format_ci(single) == "25.00"
    with pytest.raises(ValueError, match="non-empty"):
        mean_ci([])
    with pytest.raises(ValueError, match="non-finite"):
        mean_ci([0.1, float("nan")])


@tensorflow_only
def test_fig2_writes_csv_and_plot_and_skips_finished_runs(tmp_path, capsys):
    args = ["fig2", "--dataset", "digits", "--p-values", "0.9", "1.0", *TINY]
    repro(tmp_path, *args)
    rows = read_csv(tmp_path / "fig2" / "digits" / "fig2-digits.csv")
    assert [row["p"] for row in rows] == ["0.90", "1.00"]
    # Each row is its run's recorded test error (one seed), as the CSV rounds it.
    for row in rows:
        recorded = run_results(tmp_path / "fig2" / "digits" / f"p{row['p']}" / "seed-0")["test_error"]
        assert row["n"] == "1" and row["mean_test_error"] == f"{recorded:.5f}"
    drop, relu = (float(row["mean_test_error"]) for row in rows)
    assert float(rows[0]["paired_diff_vs_p1"]) == pytest.approx(drop - relu, abs=1e-4)
    assert float(rows[1]["paired_diff_vs_p1"]) == 0.0
    assert (tmp_path / "fig2" / "digits" / "fig2-digits.png").stat().st_size > 1000
    results = tmp_path / "fig2" / "digits" / "p0.90" / "seed-0" / "results.json"
    stamp = results.stat().st_mtime_ns
    capsys.readouterr()
    repro(tmp_path, *args)
    assert capsys.readouterr().out.count("done before, skipped") == 2
    assert results.stat().st_mtime_ns == stamp
    assert read_csv(tmp_path / "fig2" / "digits" / "fig2-digits.csv") == rows
    # A finished run's results are read through the one checked reader
    # (issue 25: a second, unchecked reader averaged a test error of -5.0).
    with open(results) as f:
        edited = {**json.load(f), "test_error": -5.0}
    results.write_text(json.dumps(edited))
    assert cli.main(["repro", *args, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dropact repro: error: {str(results)!r} is not a run's results "
                          "('test_error' is -5.0, not in [0, 1])") and len(err.splitlines()) == 1
    assert json.loads(results.read_text()) == edited


@tensorflow_only
def test_fig2_on_mnist1d_uses_the_flattening_mlp(tmp_path):
    repro(tmp_path, "fig2", "--dataset", "mnist1d", "--p-values", "0.95", *TINY)
    with open(tmp_path / "fig2" / "mnist1d" / "p0.95" / "seed-0" / "results.json") as f:
        results = json.load(f)
    # Flatten(40) -> 512 -> 256 -> 10, weights and biases.
    assert results["trainable_parameters"] == 40 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10
    assert results["config"]["model"] == "mlp-1d"


NEW_SETUPS = {  # MNIST-1D setup -> (model, recipe, trainable parameters)
    "mnist1d-mlp": ("mnist1d-mlp", "mnist1d", 15_210),
    "mnist1d-cnn": ("mnist1d-cnn", "mnist1d", 5_210),
    "simple-cnn-1d": ("simple-cnn-1d", "quick", 197_930),
}


@tensorflow_only
def test_fig2_new_mnist1d_setups_write_results_like_the_others(tmp_path):
    repro(tmp_path, "fig2", "--dataset", "mnist1d", "--p-values", "0.95", *TINY)
    with open(tmp_path / "fig2" / "mnist1d" / "p0.95" / "seed-0" / "results.json") as f:
        reference = json.load(f)
    header = read_csv(tmp_path / "fig2" / "mnist1d" / "fig2-mnist1d.csv")[0].keys()
    for setup, (model, recipe, parameters) in NEW_SETUPS.items():
        repro(tmp_path, "fig2", "--dataset", "mnist1d", "--setup", setup, "--p-values", "0.95", *TINY)
        directory = tmp_path / "fig2" / f"mnist1d-{setup}"
        with open(directory / "p0.95" / "seed-0" / "results.json") as f:
            results = json.load(f)
        assert results.keys() == reference.keys()
        assert results["history"][0].keys() == reference["history"][0].keys()
        assert results["config"]["model"] == model and results["config"]["recipe"] == recipe
        assert results["trainable_parameters"] == parameters
        assert results["epochs_completed"] == 1 and 0.0 <= results["test_error"] <= 1.0
        rows = read_csv(directory / f"fig2-mnist1d-{setup}.csv")
        assert rows[0].keys() == header and [r["p"] for r in rows] == ["0.95"]
        train_error = 1 - results["history"][-1]["accuracy"]
        assert float(rows[0]["mean_final_train_error"]) == pytest.approx(train_error, abs=1e-5)
    # The MNIST-1D recipe: Adam 1e-2, batch 100, no weight decay.
    assert results["recipe"]["optimizer"] == "sgd"  # simple-cnn-1d: the CPU recipe
    with open(tmp_path / "fig2" / "mnist1d-mnist1d-cnn" / "p0.95" / "seed-0" / "results.json") as f:
        recipe = json.load(f)["recipe"]
    assert (recipe["optimizer"], recipe["lr"], recipe["batch_size"], recipe["weight_decay"]) == (
        "adam", 0.01, 100, 0.0)


@tensorflow_only
def test_table_and_fig4_choose_a_setup(tmp_path, capsys):
    repro(tmp_path, "table", "--setup", "mnist1d-cnn", *TINY)
    text = (tmp_path / "table-cpu" / "table-mnist1d-cnn.md").read_text()
    lines = text.splitlines()
    assert lines[2].startswith("| cpu | mnist1d | mnist1d-cnn | 1 | ")
    assert sum(line.startswith("| cpu |") for line in lines) == 2  # test and training errors
    assert "Final training error" in text
    capsys.readouterr()
    # Figure 4 plots the table's ReLU and Drop-Activation runs: nothing new to train.
    repro(tmp_path, "fig4", "--dataset", "mnist1d", "--setup", "mnist1d-cnn", *TINY)
    assert capsys.readouterr().out.count("done before, skipped") == 2
    rows = read_csv(tmp_path / "fig4" / "mnist1d-cnn-mnist1d" / "fig4.csv")
    assert [(r["activation"], r["epoch"]) for r in rows] == [("relu", "1"), ("dropact", "1")]
    # A finished run is reused only for the same configuration.
    assert cli.main(["repro", "fig4", "--dataset", "mnist1d", "--setup", "mnist1d-cnn", "--seeds", "1",
                     "--epochs", "2", "--steps-per-epoch", "2", "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "another configuration" in error and "epochs: 1 there, 2 asked" in error
    assert cli.main(["repro", "fig2", "--dataset", "mnist1d", "--setup", "nope", "--out", str(tmp_path)]) == 2
    assert "mnist1d-mlp, mnist1d-cnn, simple-cnn-1d" in capsys.readouterr().err


def test_fig2_at_cpu_scale_rejects_other_datasets(tmp_path, capsys):
    assert cli.main(["repro", "fig2", "--dataset", "cifar10", "--out", str(tmp_path)]) == 2
    assert "digits, mnist1d" in capsys.readouterr().err


def test_a_finished_run_of_keras_momentum_is_not_reused():
    from keras_dropact.repro.runs import check_same_run
    from keras_dropact.training.config import TrainConfig

    config = TrainConfig(model="simple-cnn", run_dir="out/run")
    earlier = {k: v for k, v in config.to_dict().items() if k != "momentum_convention"}
    with pytest.raises(ValueError, match="momentum_convention: 'keras' there, 'pytorch' asked"):
        check_same_run(config, {"config": earlier})
    check_same_run(config, {"config": config.to_dict()})


def test_fig3_data_and_functions():
    x, y = fig3.make_data("xsinx", seed=3)
    assert x.shape == (20,) and np.all(np.diff(x) >= 0) and 0 <= x.min() and x.max() <= 10
    residual = y - fig3.x_sin_x(x)
    assert abs(residual.mean()) < 1.0 and 0.4 < residual.std() < 1.8  # N(0, 1) noise, 20 draws
    np.testing.assert_array_equal(fig3.make_data("xsinx", seed=3)[0], x)
    np.testing.assert_array_equal(fig3.piecewise_constant([0.0, 1.9, 2.0, 9.9, 10.0]), [2, 2, -3, -5, -5])


@tensorflow_only
def test_fig3_tiny(tmp_path):
    repro(tmp_path, "fig3", "--seeds", "1", "--steps", "3")
    rows = read_csv(tmp_path / "fig3" / "fig3.csv")
    assert [(r["function"], r["activation"]) for r in rows] == [
        ("xsinx", "relu"), ("xsinx", "dropact"), ("xsinx", "dropact - relu (paired)"),
        ("piecewise", "relu"), ("piecewise", "dropact"), ("piecewise", "dropact - relu (paired)"),
    ]
    relu, drop, paired = (float(rows[i]["mean_test_mse"]) for i in range(3))
    assert paired == pytest.approx(drop - relu, abs=1e-3)
    assert (tmp_path / "fig3" / "fig3.png").exists()


@tensorflow_only
def test_fig4_and_fig6_tiny(tmp_path):
    repro(tmp_path, "fig4", "--dataset", "digits", "--seeds", "1", "--epochs", "2", "--steps-per-epoch", "2")
    rows = read_csv(tmp_path / "fig4" / "simple-cnn-digits" / "fig4.csv")
    assert [(r["activation"], r["epoch"]) for r in rows] == [
        ("relu", "1"), ("relu", "2"), ("dropact", "1"), ("dropact", "2")]
    # The curves are the runs' recorded errors (Figure 4 shares the table's runs).
    runs = {"relu": tmp_path / "table-cpu" / "simple-cnn-digits" / "relu" / "seed-0",
            "dropact": tmp_path / "fig2" / "digits" / "p0.95" / "seed-0"}
    for row in rows:
        recorded = run_results(runs[row["activation"]])["history"][int(row["epoch"]) - 1]
        assert row["mean_train_error"] == f"{1 - recorded['accuracy']:.5f}"
        assert row["mean_test_error"] == f"{1 - recorded['val_accuracy']:.5f}"
    repro(tmp_path, "fig6", "--dataset", "digits", "--seeds", "1", "--epochs", "2", "--steps-per-epoch", "2")
    rows = read_csv(tmp_path / "fig6" / "simple-cnn-digits" / "fig6.csv")
    history = run_results(tmp_path / "fig6" / "simple-cnn-digits" / "dropact-p0.95" / "seed-0")["history"]
    assert [(r["epoch"], r["mean_shift_ratio"], r["seed_0"]) for r in rows] == [
        (str(e + 1), f"{h['shift_ratio']:.5f}", f"{h['shift_ratio']:.5f}") for e, h in enumerate(history)]
    assert len(rows) == 2 and all(0.0 < float(r["mean_shift_ratio"]) < 10.0 for r in rows)
    assert (tmp_path / "fig6" / "simple-cnn-digits" / "fig6.png").exists()


@tensorflow_only
def test_table_tiny(tmp_path):
    repro(tmp_path, "table", "--rows", "digits", *TINY)
    text = (tmp_path / "table-cpu" / "table.md").read_text()
    line = next(line for line in text.splitlines() if "| digits |" in line)
    assert line.startswith("| cpu | digits | simple-cnn | 1 | ")
    assert "| baseline (ours) | paper | RReLU (ours) | paper | Drop-Activation (ours) | paper |" in text
    # The "ours" cells are the runs' recorded test errors; the Drop-Activation
    # column is Figure 2's run at p = 0.95 (the same configuration).
    folder = tmp_path / "table-cpu" / "simple-cnn-digits"
    errors = [run_results(path)["test_error"] for path in (
        folder / "relu" / "seed-0", folder / "rrelu" / "seed-0", tmp_path / "fig2" / "digits" / "p0.95" / "seed-0")]
    cells = [cell.strip() for cell in line.split("|")[1:-1]]
    assert cells[4:9:2] == [format_ci(mean_ci([error])) for error in errors]
    assert cells[10] == format_paired(paired_difference([errors[2]], [errors[0]]))
    assert not (folder / "dropact").exists()


def test_table_markdown_names_the_columns_of_augmentation_rows():
    rows = table.select_rows("paper", ["2 cifar10 resnet-110"]) + table.select_rows("paper", ["5 cifar100 wrn"])
    errors = {row: {column: {0: 0.1, 1: 0.2} for column in row.columns} for row in rows}
    lines = table.markdown(rows, errors, [0, 1]).splitlines()
    assert lines[2] == ("| 2 | cifar10 | resnet-110 | 2 | 15.00 +- 63.53 | 6.43 | 15.00 +- 63.53 | 7.66 | "
                        "15.00 +- 63.53 | 6.17 | 0.00 +- 0.00, lower in 0 of 2 |")
    assert "| cutout: 15.00 +- 63.53 | 18.41 | cutout + Drop-Activation: 15.00 +- 63.53 | 17.86 |" in lines[3]


def test_table_rows_follow_the_paper():
    rows = table.select_rows("paper")
    assert len(rows) == 24
    (row,) = table.select_rows("paper", ["2 cifar10 resnet-110"])
    assert row.paper == (6.43, 7.66, 6.17)
    assert [c.activation for c in row.columns] == ["relu", "rrelu", "dropact"]
    (row,) = table.select_rows("paper", ["5 cifar100 resnet-18"])
    assert [(c.activation, c.augment) for c in row.columns] == [
        ("relu", None), ("relu", "cutout"), ("dropact", "cutout")]
    with pytest.raises(ValueError, match="No paper table row matches"):
        table.select_rows("paper", ["imagenet"])


def test_theory_checks(tmp_path):
    repro(tmp_path, "theory")
    rows = read_csv(tmp_path / "theory" / "shift_ratio.csv")
    at_95 = next(r for r in rows if r["p"] == "0.95")
    assert float(at_95["closed_form"]) == pytest.approx(0.9377, abs=1e-4)
    assert all(abs(float(r["z"])) < 4.5 for r in rows if r["p"] != "1.00")
    assert (tmp_path / "theory" / "shift_ratio.png").exists()
    text = (tmp_path / "theory" / "theory.md").read_text()
    assert text.count("| orthogonal W2 (16x16) |") == 3
