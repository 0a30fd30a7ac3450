"""`dropact compare`: does an activation help my model on my data?

    plan = Plan(flags, ["relu", "dropact", "dropact:p=0.9"], seeds=6, out="runs/cmp")
    report = run(plan)

An arm is an activation setting (`parse_arm`); the first arm is the
reference. Every (arm, seed) is one `dropact train` run of the same
training configuration (`flags`: every train flag but --activation, --p,
--run-dir and --resume) in `OUT/ARM/seed-K`, trained in this process
through the training path of `dropact train` (`training.run.Run`), each in
a fresh Keras session. Seeds are shared across arms, so the runs of one
seed share the initialisation, the data order and the augmentations, and
each arm's difference to the reference is paired by seed
(`stats.paired_difference`). Seeds are the outer loop: a comparison
stopped half-way leaves every arm with about the same number of runs.

Resumable and idempotent: a finished run (its results.json) is read back,
never trained again; a started one (its config.json) continues exactly
from its last backup (`Run.resume`). OUT/compare.json records the training
configuration, the recipe and the backend; a command that would change
them is refused. Other arms or seeds are not: each run is checked against
its own files. After a run, its final model is evaluated once on the
training split in inference mode without augmentation (`TRAIN_EVALUATION`
in its run directory): the training error of the generalisation gap, which
`fit`'s logged accuracy (random masks, augmentation) is not. The report
(`compare_report`) is written from the runs at the end. OUT/tensorboard/
holds the comparison's TensorBoard HParams experiment (`arm_hparams`,
written when the command starts): TensorBoard pointed at OUT shows the
arms side by side, each run a session of its own HParams.
"""

import collections
import contextlib
import dataclasses
import json
import os
import shutil

import keras

from keras_dropact import pipelines
from keras_dropact.interrupts import Interrupted
from keras_dropact.interrupts import StopSignals
from keras_dropact.layers import ACTIVATIONS
from keras_dropact.layers import DEFAULT_KEEP_PROBABILITY
from keras_dropact.layers import check_keep_probability
from keras_dropact.repro import compare_report
from keras_dropact.repro import runs
from keras_dropact.repro.stats import CONFIDENCE
from keras_dropact.training import hparams
from keras_dropact.training import run_dataset
from keras_dropact.training import run_files
from keras_dropact.training import strategies
from keras_dropact.training import user_models
from keras_dropact.training.config import TrainConfig
from keras_dropact.training.config import check_seeds
from keras_dropact.training.evaluate import evaluate
from keras_dropact.training.results import read_results
from keras_dropact.training.run import Run
from keras_dropact.training.run_dir import CONFIG
from keras_dropact.training.run_dir import LOCK
from keras_dropact.training.run_dir import TENSORBOARD
from keras_dropact.training.run_dir import RunDir
from keras_dropact.training.stops import TrainingDiverged
from keras_dropact.training.stops import TrainingInterrupted
from keras_dropact.training.validate import validate

RECORD = "compare.json"
TRAIN_EVALUATION = "train_evaluation.json"
_EVALUATION_FIELDS = {"train_error": (float,), "train_loss": (float, None), "examples": (int,)}
# The activations whose layer takes p (`layers.get_act_layer`): Drop-Activation's
# probability of keeping the nonlinearity, LeakyReLU's slope 1 - p.
TAKES_P = ("dropact", "leaky_relu")
# The TrainConfig fields each run sets; compare.json records the others.
PER_RUN = ("activation", "p", "seed", "run_dir")

Arm = collections.namedtuple("Arm", ["name", "activation", "p"])
Arm.__doc__ = """One activation setting of a comparison.

Attributes:
    name: `relu`, `dropact`, `dropact:p=0.9`, ... (the default p is left out).
    activation: a name of `layers.ACTIVATIONS`.
    p: the p of a `TAKES_P` activation, else None.
"""


def parse_arm(text):
    """The `Arm` of `--arm TEXT`: an activation name, or `NAME:p=P` for an
    activation that takes p (P in (0, 1]); ValueError naming the choices."""
    choices = (f"valid arms: {', '.join(ACTIVATIONS)}, or "
               f"{' or '.join(f'{name}:p=P' for name in TAKES_P)} with P in (0, 1]")
    activation, colon, setting = text.partition(":")
    if activation not in ACTIVATIONS:
        raise ValueError(f"Unknown --arm {text!r}; {choices}.")
    if not colon:
        return Arm(activation, activation, DEFAULT_KEEP_PROBABILITY if activation in TAKES_P else None)
    key, equals, value = setting.partition("=")
    if activation not in TAKES_P or key != "p" or not equals:
        raise ValueError(f"Invalid --arm {text!r}; {choices}.")
    try:
        p = check_keep_probability(float(value))
    except ValueError:
        raise ValueError(f"Invalid --arm {text!r}: p must be a number in (0, 1]; {choices}.") from None
    name = activation if p == DEFAULT_KEEP_PROBABILITY else f"{activation}:p={p!r}"
    return Arm(name, activation, p)


def parse_arms(texts):
    """The `Arm`s of the `--arm` texts, the reference first: at least two, no two alike."""
    arms = []
    for text in texts:
        arm = parse_arm(text)
        if arm in arms:
            raise ValueError(f"--arm {text!r} repeats the arm {arm.name!r}; give each arm once.")
        arms.append(arm)
    if len(arms) < 2:
        raise ValueError(
            f"dropact compare needs at least two --arm (the first is the reference), got {len(arms)}."
        )
    return arms


def arm_directory(arm):
    """The folder name of an arm's runs: its name, `dropact:p=0.9` as `dropact-p0.9`."""
    return arm.name.replace(":p=", "-p")


class Plan:
    """What a comparison trains, checked; making it writes nothing.

    Args:
        flags: `TrainConfig` fields as `dropact train`'s flags give them, but
            activation, p and run_dir; `seed` is the first seed (default 0).
        arms: the `--arm` texts, the reference first.
        seeds: runs per arm: seeds `seed` .. `seed + seeds - 1`.
        out: the comparison's folder: new, empty, or this configuration's.
        command: the command line, for compare.json and the report.

    Raises:
        ValueError, RuntimeError: a bad arm, seed count or flag, or an --out
            that holds something else (one line naming it).
    """

    def __init__(self, flags, arms, seeds, out, command=""):
        flags = dict(flags)
        fixed = sorted(set(flags) & set(PER_RUN) - {"seed"})
        if fixed:
            raise ValueError(f"dropact compare sets {', '.join(fixed)} per arm and run; leave them out.")
        first = flags.pop("seed", TrainConfig.seed)
        self.arms = parse_arms(arms)
        self.seeds = check_seeds("seed", first, seeds)
        if not isinstance(out, str) or not out:
            raise ValueError(f"--out must be a folder, got {out!r}.")
        # Every run starts from the model's files as they are now; compare.json
        # records their digests, so that changed files are refused.
        flags.update(user_models.digests(flags.get("model", TrainConfig.model), flags.get("weights")))
        self.flags, self.out, self.command = flags, out, command
        # TrainConfig checks the flags and every arm's activation and p.
        base, *_ = [self.config(arm, first) for arm in self.arms]
        self.record = json.loads(json.dumps({
            "command": command,
            "backend": keras.backend.backend(),
            "training": {k: v for k, v in base.to_dict().items() if k not in PER_RUN},
            "recipe": dataclasses.asdict(base.resolved_recipe()),
        }))
        if base.strategy == "multiworker":
            raise ValueError("dropact compare trains in one process; --strategy multiworker needs "
                             "several. Run the arms' `dropact train` runs on the cluster instead.")
        check_out(out, self.record)

    def config(self, arm, seed):
        """The `TrainConfig` of the run of `arm` with `seed`, in `OUT/ARM/seed-SEED`."""
        return TrainConfig(
            **self.flags, activation=arm.activation,
            p=DEFAULT_KEEP_PROBABILITY if arm.p is None else arm.p, seed=seed,
            run_dir=os.path.join(self.out, arm_directory(arm), f"seed-{seed}"),
        )

    @property
    def runs(self):
        """Every `(arm, seed)`, seeds outermost."""
        return [(arm, seed) for seed in self.seeds for arm in self.arms]


def check_out(out, record):
    """Refuses an --out that is not this comparison's: not a folder, a folder
    holding other files (and no compare.json), or a compare.json whose
    training configuration, recipe or backend differ from `record`'s."""
    if not os.path.lexists(out):
        return
    if not os.path.isdir(out):
        raise ValueError(f"--out {out!r} is not a folder; choose a new or empty folder.")
    path = os.path.join(out, RECORD)
    if not os.path.lexists(path):
        others = sorted(name for name in os.listdir(out)
                        if name != LOCK and run_files.temporary_target(name) != RECORD)
        if others:
            raise ValueError(
                f"--out {out!r} holds other files ({', '.join(others[:3])}"
                f"{', ...' if len(others) > 3 else ''}) and no {RECORD}, so no comparison; "
                "choose a new or empty folder."
            )
        return
    fix = "Choose another --out."
    saved = run_files.read_json(path, "a comparison's record", fix)
    changed = _changes(saved, record) if isinstance(saved, dict) else [f"{RECORD} is not a record"]
    if changed:
        raise ValueError(
            f"--out {out!r} holds a comparison of another configuration ({'; '.join(changed)}); "
            f"nothing was changed. Repeat its command ({saved.get('command') if isinstance(saved, dict) else '?'}), "
            "or choose another --out."
        )


def _changes(saved, record):
    """What differs between two compare.json records, as `--flag OLD there, NEW now`
    (a model file's digest, which no flag sets, as `model_sha256 OLD there, NEW now`)."""
    changes = []
    if saved.get("backend") != record["backend"]:
        changes.append(f"--backend {saved.get('backend')!r} there, {record['backend']!r} now")
    for section, prefix in (("training", "--"), ("recipe", "recipe ")):
        old = saved.get(section) if isinstance(saved.get(section), dict) else {}
        new = record[section]
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                name = f"--{key.replace('_', '-')}" if prefix == "--" else f"{prefix}{key}"
                name = key if key in user_models.DIGEST_KEYS else name
                changes.append(f"{name} {old.get(key)!r} there, {new.get(key)!r} now")
    return changes


def check_runtime(plan):
    """What a run checks before it writes (`validate`), once per arm (a model
    that is not a preset is built as each arm trains it: as it is, converted),
    and that it runs in one process (only one writes the comparison's files)."""
    configs = [plan.config(arm, plan.seeds[0]) for arm in plan.arms]
    runtime = strategies.make(configs[0].strategy)
    if runtime.num_processes > 1:
        raise ValueError(
            f"dropact compare trains in one process; {runtime.num_processes} processes joined. "
            "Run the arms' `dropact train` runs on the cluster instead."
        )
    for config in configs:
        validate(config, num_replicas=runtime.num_replicas)


def run(plan, signals=None, verbose=0):
    """Trains every run of `plan` that has not finished, then writes the report.

    Args:
        plan: a `Plan`.
        signals: the `interrupts.StopSignals` to read (the `dropact`
            command's); default: new ones for the call.
        verbose: `model.fit` verbosity.

    Returns:
        The report (`compare_report.build`), also in OUT/report.json.

    Raises:
        Interrupted: SIGINT or SIGTERM; the run under way kept its last
            backup, and the same command continues.
        ValueError, RuntimeError: refused before anything is written, or a
            run directory that is not this comparison's.
        stops.CannotWrite: a file could not be written.
    """
    check_runtime(plan)
    with (signals or StopSignals()) as signals, _claimed(plan):
        progress = runs.Progress("compare", len(plan.runs))
        outcomes = []
        for arm, seed in plan.runs:
            outcomes.append(_outcome(plan, arm, seed, progress, signals, verbose))
            if signals.received is not None:
                raise Interrupted(signals.received, f"after run {progress.done} of {progress.total}; "
                                  "finished runs are kept. Rerun the same command to continue.")
        return compare_report.write(plan, outcomes)


@contextlib.contextmanager
def _claimed(plan):
    """OUT created and locked (one comparison at a time), compare.json written
    (checked again under the lock), the TensorBoard HParams experiment of
    its arms written (OUT/tensorboard/), for the `with` block."""
    os.makedirs(plan.out, exist_ok=True)
    with RunDir(plan.out).lock():
        check_out(plan.out, plan.record)
        path = os.path.join(plan.out, RECORD)
        if not os.path.exists(path):
            run_files.write_json(path, plan.record)
        hparams.write_experiment(os.path.join(plan.out, TENSORBOARD), arm_hparams(plan))
        yield


def arm_hparams(plan):
    """The HParams of each arm's runs (`hparams.run_hparams`; a seed is none)."""
    configs = [plan.config(arm, plan.seeds[0]) for arm in plan.arms]
    info = pipelines.info(configs[0].dataset, image_size=configs[0].image_size)
    return [hparams.run_hparams(config, config.resolved_recipe(), info) for config in configs]


def comparison_of_run(run_dir):
    """What the comparison whose run `run_dir` is (OUT/ARM/seed-K) says of
    the run's arm, for `dropact publish`; None for a run of no comparison,
    or of one that has not ended (no report yet).

    Returns:
        {"command", "arm", "reference", "seeds", "confidence", "test_error"
        (the arm's mean, half_width, n, std over its finished seeds),
        "difference_to_reference" (paired by seed, with lower and ties; None
        for the reference arm)}, from OUT/report.json (`compare_report.read`).

    Raises:
        RuntimeError: a damaged report.json (one line naming it).
    """
    out = os.path.dirname(os.path.dirname(os.path.realpath(run_dir)))
    report = compare_report.read(out) if os.path.isfile(os.path.join(out, RECORD)) else None
    name = os.path.relpath(os.path.realpath(run_dir), out)
    for arm in [] if report is None else report["arms"]:
        if any(run["run_dir"] == name for run in arm["runs"]) and arm["test_error"]:
            difference = arm["difference"] and arm["difference"]["test_error"]
            return {"command": report["command"], "arm": arm["arm"],
                    "reference": report["reference"], "seeds": report["seeds"],
                    "confidence": CONFIDENCE, "test_error": arm["test_error"],
                    "difference_to_reference": difference}
    return None


def _outcome(plan, arm, seed, progress, signals, verbose):
    """One run, trained unless it has finished, and what the report needs of it."""
    config = plan.config(arm, seed)
    label = f"{arm.name}, seed {seed}"
    progress.start()
    results = read_results(config.run_dir)
    skipped = results is not None
    if skipped:
        runs.check_same_run(config, results)
    else:
        results = _train(config, label, progress, signals, verbose)
    outcome = {"arm": arm.name, "seed": seed, "status": results["status"],
               "run_dir": os.path.relpath(config.run_dir, plan.out),
               "test_error": results["test_error"], "history": results["history"]}
    if results["status"] == "finished":
        evaluation = train_split_evaluation(config.run_dir, config.train_size)
        outcome.update(train_error=evaluation["train_error"], train_examples=evaluation["examples"],
                       gap=outcome["test_error"] - evaluation["train_error"],
                       logged_train_error=runs.logged_train_error(results))
        text = (f"test error {100 * outcome['test_error']:.2f}%, "
                f"training error {100 * outcome['train_error']:.2f}%")
    else:
        text = f"diverged at optimizer step {results['diverged_at_step']}"
    progress.finish(label, text, skipped)
    return outcome


def _train(config, label, progress, signals, verbose):
    """Trains (new run) or resumes (started run) `config`; returns its results,
    also those of a run that diverged (its results.json says so)."""
    keras.backend.clear_session()
    path = config.run_dir
    started = os.path.isfile(os.path.join(path, CONFIG))
    print(f"{progress.prefix()} {label}: {'resuming from its last backup' if started else 'training'}",
          flush=True)
    if started:
        run = Run.resume(path)
        runs.check_same_run(config, {"config": run.config.to_dict()})
    else:
        _discard_unstarted(path)
        run = Run.new(config)
    try:
        return run.fit(verbose=verbose, signals=signals)
    except TrainingDiverged:
        results = read_results(path)
        if results is None:
            raise
        return results
    except TrainingInterrupted as stop:
        raise Interrupted(
            stop.signum, f"in run {progress.done + 1} of {progress.total} ({label}). Rerun the same "
            "command to continue: finished runs are kept, this one goes on from its last backup."
        ) from None


def _discard_unstarted(path):
    """Removes what a new run's start left when it was killed before config.json
    (its lock file, dataset.json, temporary files), so that the run starts
    again; refuses a folder that holds anything else."""
    if not os.path.lexists(path):
        return
    leftovers = (LOCK, run_dataset.FILE)
    if not os.path.isdir(path) or any(
            name not in leftovers and run_files.temporary_target(name) not in (run_dataset.FILE, CONFIG)
            for name in os.listdir(path)):
        raise RuntimeError(
            f"{path!r} holds no {CONFIG}, so no run this comparison started, but other files; "
            "nothing was changed. Move it away, then run the command again."
        )
    shutil.rmtree(path)


def train_split_evaluation(run_dir, train_size=None):
    """The finished model's error and loss on the examples it trained on (the
    whole training split, or its first `train_size`), in inference mode
    (Drop-Activation's expectation, eq. 5) without augmentation.

    Evaluated once (`training.evaluate`, from model.keras) and kept in
    `RUN_DIR/train_evaluation.json` (`train_error`, `train_loss`, `examples`).
    """
    path = os.path.join(run_dir, TRAIN_EVALUATION)
    if os.path.lexists(path):
        return run_files.read_record(
            path, "a training-split evaluation",
            "Remove it: the next run of the command evaluates the model again.", _evaluation)
    keras.backend.clear_session()
    # Its `test_error` is the split's error.
    result = evaluate(run_dir, split="train", take=train_size)
    saved = {"train_error": float(result["test_error"]), "train_loss": float(result["test_loss"]),
             "examples": result["examples"]}
    run_files.write_json(path, saved)
    return saved


def _evaluation(values):
    """`values` if they are a training-split evaluation, else ValueError."""
    problem = run_files.record_problem(values, _EVALUATION_FIELDS)
    if problem is not None:
        raise ValueError(problem)
    return values
