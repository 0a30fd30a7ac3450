"""The report of `dropact compare`: OUT/report.json, report.md, learning_curves.png.

Written by `write`, read back by `read` (checked: `dropact publish` quotes
an arm's figures from it).

Per arm: the test error, the final training error (the finished model on
the training split in inference mode, without augmentation), the
generalisation gap (their difference, run by run) and the last epoch's
training error as `fit` logged it (random masks, augmentation), each as the
mean and 95% Student-t interval over the seeds (`stats.mean_ci`); the
paired difference of each arm to the reference, seed by seed
(`stats.paired_difference`: mean, interval, the seeds it won); and the
mean learning curves (`curves.mean_error_curves`). Runs that diverged are
listed and left out; a pair counts only where both runs finished.
"""

import os

from keras_dropact.repro import curves
from keras_dropact.repro import plots
from keras_dropact.repro.stats import Paired
from keras_dropact.repro.stats import Summary
from keras_dropact.repro.stats import format_ci
from keras_dropact.repro.stats import format_paired
from keras_dropact.repro.stats import markdown_table
from keras_dropact.repro.stats import mean_ci
from keras_dropact.repro.stats import paired_difference
from keras_dropact.training import run_files
from keras_dropact.training.run_files import atomic_write
from keras_dropact.training.run_files import write_json
from keras_dropact.training.run_files import write_text

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
FIGURE = "learning_curves.png"
# Per run: the errors summarised per arm; those also paired to the reference.
ERRORS = ("test_error", "train_error", "gap", "logged_train_error")
PAIRED = ("test_error", "train_error", "gap")


def write(plan, outcomes):
    """Builds the report of `plan`'s `outcomes` and writes its three files; returns it."""
    report = build(plan, outcomes)
    if any(arm["curves"] for arm in report["arms"]):
        with atomic_write(os.path.join(plan.out, FIGURE), ".png") as temporary:
            plots.curves(
                curves.error_curve_series({
                    arm["arm"]: tuple(arm["curves"][key] for key in ("epoch", "logged_train_error", "test_error"))
                    for arm in report["arms"] if arm["curves"]
                }),
                temporary, "error (%)",
                f"{report['training']['model']} on {report['training']['dataset']}: "
                f"mean over seeds {_seed_range(report['seeds'])}",
            )
    write_json(os.path.join(plan.out, REPORT_JSON), report)
    write_text(os.path.join(plan.out, REPORT_MD), markdown(report))
    return report


def build(plan, outcomes):
    """The report as a dict (report.json): the command, the configuration, one
    entry per arm (`_arm_entry`), the runs that diverged."""
    by_arm = {arm.name: {o["seed"]: o for o in outcomes if o["arm"] == arm.name} for arm in plan.arms}
    reference = plan.arms[0].name
    return {
        "command": plan.command,
        "reference": reference,
        "seeds": plan.seeds,
        "backend": plan.record["backend"],
        "training": plan.record["training"],
        "recipe": plan.record["recipe"],
        "arms": [_arm_entry(arm, by_arm[arm.name], None if arm.name == reference else by_arm[reference])
                 for arm in plan.arms],
        "diverged": [o["run_dir"] for o in outcomes if o["status"] != "finished"],
        "figure": FIGURE,
    }


def _arm_entry(arm, runs, reference):
    """One arm: its runs, the summary of each of `ERRORS`, the paired
    differences to the `reference` runs (None for the reference) and the
    mean learning curves (None without a finished run)."""
    finished = {seed: o for seed, o in runs.items() if o["status"] == "finished"}
    entry = {
        "arm": arm.name, "activation": arm.activation, "p": arm.p, "n": len(finished),
        "runs": [{key: value for key, value in o.items() if key != "history"} for o in runs.values()],
    }
    for key in ERRORS:
        values = [o[key] for o in finished.values()]
        entry[key] = mean_ci(values)._asdict() if values else None
    entry["difference"] = None if reference is None else {
        key: _paired(finished, reference, key) for key in PAIRED}
    entry["curves"] = None
    if finished:
        epochs, train_error, test_error = curves.mean_error_curves([o["history"] for o in finished.values()])
        entry["curves"] = {"epoch": epochs.tolist(), "test_error": test_error.tolist(),
                           "logged_train_error": train_error.tolist()}
    return entry


def _paired(finished, reference, key):
    """`paired_difference` of `key` over the seeds where both runs finished, as a dict."""
    seeds = [s for s in finished if reference.get(s, {}).get("status") == "finished"]
    if not seeds:
        return None
    paired = paired_difference([finished[s][key] for s in seeds], [reference[s][key] for s in seeds])
    return {**paired.difference._asdict(), "lower": paired.lower, "ties": paired.ties}


def _seed_range(seeds):
    return f"{seeds[0]}..{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])


def markdown(report):
    """report.md: the command and configuration, the errors per arm, the paired
    differences to the reference, the learning curves and every run."""
    training, reference = report["training"], report["reference"]
    arms = report["arms"]
    errors = markdown_table(
        ["arm", "runs", "test error (%)", "training error (%)", "gap: test - training (points)",
         "training error as fit logged it (%)"],
        [[arm["arm"] + (" (reference)" if arm["arm"] == reference else ""), arm["n"],
          *(_cell(arm[key]) for key in ERRORS)] for arm in arms])
    differences = markdown_table(
        ["arm", "test error (points)", "training error (points)", "gap (points)"],
        [[arm["arm"], *(_paired_cell(arm["difference"][key]) for key in PAIRED)]
         for arm in arms if arm["difference"] is not None])
    runs = markdown_table(
        ["arm", "seed", "test error (%)", "training error (%)", "training examples",
         "as fit logged it (%)", "run"],
        [[run["arm"], run["seed"], _percent(run["test_error"]), _percent(run.get("train_error")),
          run.get("train_examples", "-"), _percent(run.get("logged_train_error")),
          f"`{run['run_dir']}`" + ("" if run["status"] == "finished" else f" ({run['status']})")]
         for arm in arms for run in arm["runs"]])
    given = ", ".join(f"{key} {value}" for key, value in training.items() if value not in (None, False))
    recipe = ", ".join(f"{key} {value}" for key, value in report["recipe"].items()
                       if key != "description" and value not in (None, []))
    return "\n".join([
        f"# dropact compare: {training['model']} on {training['dataset']}", "",
        f"    {report['command']}", "",
        f"Every arm trained with the same configuration ({given}; backend {report['backend']}) "
        f"and recipe ({recipe}), once per seed {_seed_range(report['seeds'])}: runs of one seed "
        "share the initialisation, the data order and the augmentations.", "",
        "## Errors per arm", "", errors,
        "Mean +- half width of the 95% Student-t interval over the seeds. Training error: the "
        "final model on the whole training split in inference mode, without augmentation; the gap "
        "is the test error minus it, run by run. As fit logged it: the last epoch's running "
        "average in training mode (random masks, augmentation), not a measure of fit.", "",
        f"## Paired differences to {reference}", "", differences,
        f"Arm minus {reference}, seed by seed, then the mean +- half width of its 95% Student-t "
        f"interval, and in how many seeds the arm's value was lower (for an error: the seeds it "
        "won). Below 0 the arm has the lower error; an interval that leaves out 0 is a "
        "difference these seeds resolve.", "",
        "## Learning curves", "", f"![mean test and training error per epoch]({FIGURE})", "",
        "Mean over the seeds per epoch: the test error (solid) and the training error as fit "
        "logged it (dashed).", "",
        "## Runs", "", runs,
    ] + ([f"Diverged, left out: {', '.join(report['diverged'])}.", ""] if report["diverged"] else []))


def _cell(summary):
    return "-" if summary is None else format_ci(Summary(**summary))


def _paired_cell(paired):
    if paired is None:
        return "-"
    summary = Summary(**{key: paired[key] for key in Summary._fields})
    return format_paired(Paired(summary, paired["lower"], paired["ties"]))


def _percent(value):
    return "-" if value is None else f"{100 * value:.2f}"


# report.json's keys, and those of each arm and of each error summary.
_REPORT_FIELDS = {"command": (str,), "reference": (str,), "seeds": (list,), "backend": (str,),
                  "training": (dict,), "recipe": (dict,), "arms": (list,), "diverged": (list,),
                  "figure": (str,)}
_ARM_FIELDS = {"arm": (str,), "activation": (str,), "p": (float, None), "n": (int,), "runs": (list,),
               **{key: (dict, None) for key in ERRORS}, "difference": (dict, None),
               "curves": (dict, None)}
_SUMMARY_FIELDS = {"mean": (float,), "half_width": (float, None), "n": (int,), "std": (float, None)}
_PAIRED_FIELDS = {**_SUMMARY_FIELDS, "lower": (int,), "ties": (int,)}
_RUN_FIELDS = {"arm": (str,), "seed": (int,), "status": (str,), "run_dir": (str,),
               "test_error": (float, None), "train_error": (float,), "train_examples": (int,),
               "gap": (float,), "logged_train_error": (float,)}
# What a run that diverged lacks.
_FINISHED_RUN_FIELDS = ("train_error", "train_examples", "gap", "logged_train_error")


def read(out):
    """The report in OUT/report.json, checked; None when there is none (the
    comparison has not ended).

    Raises:
        RuntimeError: report.json is unreadable or not a report (one line).
    """
    path = os.path.join(out, REPORT_JSON)
    if not os.path.lexists(path):
        return None
    return run_files.read_record(
        path, "a comparison's report",
        "Rerun the comparison's command: it writes the report again.", _checked)


def _checked(report):
    """`report` if it is report.json's object, else ValueError with the first problem."""
    problem = run_files.record_problem(report, _REPORT_FIELDS)
    for arm in [] if problem else report["arms"]:
        problem = problem or _arm_problem(arm)
    if problem is not None:
        raise ValueError(problem)
    return report


def _arm_problem(arm):
    """The first way `arm` is not an arm of report.json, or None."""
    problem = run_files.record_problem(arm, _ARM_FIELDS)
    if problem is not None:
        return f"an arm: {problem}"
    checks = [(summary, _SUMMARY_FIELDS, ()) for summary in (arm[key] for key in ERRORS) if summary]
    if arm["difference"] is not None:
        checks += [(paired, _PAIRED_FIELDS, ()) for paired in arm["difference"].values() if paired]
    checks += [(run, _RUN_FIELDS, _FINISHED_RUN_FIELDS) for run in arm["runs"]]
    for values, fields, optional in checks:
        problem = run_files.record_problem(values, fields, optional)
        if problem is not None:
            return f"arm {arm['arm']!r}: {problem}"
    return None
