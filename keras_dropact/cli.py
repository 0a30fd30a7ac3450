"""The `dropact` command line: parses flags into library calls.

    dropact train     train a network (model.fit, recipes, resume)
    dropact compare   the same setup per activation (arm) and seed, paired report
    dropact evaluate  test error and loss of a run or a .keras model
    dropact export    SavedModel / ONNX / .keras for serving
    dropact predict   top-k classes of image files
    dropact publish   share a trained model (a folder, or hf://USER/NAME)
    dropact recipes   list the training recipes
    dropact repro     reproduce the paper's figures and tables

Every subcommand parses its flags into calls of `keras_dropact.training`
(`dropact train`: `run.Run`, as `train.train` does), which tests and
notebooks call directly.

`--backend jax|tensorflow` (train, compare, evaluate) picks the Keras backend;
`export` always runs on TensorFlow, and `train --resume` on the backend the
run recorded in its config.json.
Keras reads KERAS_BACKEND once, when it is first imported, and importing
`keras_dropact` imports Keras; so when the flag asks for another backend than
the one loaded, `dropact` sets KERAS_BACKEND and re-executes itself
(`python -m keras_dropact.cli ...`) before doing anything else.
`KERAS_BACKEND=jax dropact ...` does the same without the restart.

Every command ends a signal (SIGINT, SIGTERM) with one line and exit status
128 + the signal, and a file it cannot write (a full disk) with one line and
74 (`main`).
"""

import argparse
import importlib.util
import json
import os
import signal
import sys

from keras_dropact import __version__
from keras_dropact import interrupts
from keras_dropact.extras import MissingExtraError

def _add_backend(parser):
    from keras_dropact.training.strategies import BACKENDS

    parser.add_argument(
        "--backend", choices=BACKENDS,
        help="Keras backend (default: KERAS_BACKEND, else Keras' configured one); "
        "jax trains with keras.distribution (--strategy data-parallel)",
    )


def _train_defaults():
    from keras_dropact.training.config import TrainConfig

    return {name: field.default for name, field in TrainConfig.__dataclass_fields__.items()}


def _add_run_flags(parser):
    """Adds `dropact train`'s flags but the four that `dropact compare` sets
    per arm and seed (`--activation`, `--p`, `--run-dir`, `--resume`).

    Both commands take these, so a flag added here (a new `TrainConfig`
    field) reaches `compare` too. A flag not typed stays unset and
    TrainConfig's default applies (`_leave_unset`).
    """
    from keras_dropact.training import run_dataset

    defaults = _train_defaults()
    parser.add_argument("--model", default=defaults["model"], help="a preset of keras_dropact.models, keras.applications.NAME, a .keras file or package.module:function (docs/guides/your-model.md)")
    parser.add_argument("--model-kwargs", type=_json_object, metavar="JSON", help="more arguments of a keras.applications or module:function builder, a JSON object, e.g. '{\"alpha\": 0.35}'")
    parser.add_argument("--weights", metavar="FILE", help="a .weights.h5 file the model (not a preset) starts from")
    parser.add_argument("--convert-activation", metavar="NAME", help="the Keras activation --activation dropact converts in a model that is not a preset (default relu; e.g. relu6, silu, gelu)")
    parser.add_argument("--dataset", default=defaults["dataset"], help="cifar10, cifar100, svhn, emnist-balanced, fashion-mnist, digits, mnist1d or folder:PATH")
    parser.add_argument("--augment", default=None, help="none, standard, cutout, autoaugment (default: the paper's for the dataset)")
    parser.add_argument("--recipe", default=None, help="a recipe of `dropact recipes` (default: the model's, or quick)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int, help="global batch size")
    parser.add_argument("--lr", type=float, help="initial learning rate")
    parser.add_argument("--weight-decay", type=float, help="PyTorch-style L2 coefficient")
    parser.add_argument("--dropout", type=float, help="WRN dropout between the two convolutions")
    parser.add_argument("--seed", type=int, default=defaults["seed"])
    parser.add_argument("--steps-per-epoch", type=int, help="limit each epoch to N steps (smoke tests)")
    parser.add_argument("--train-size", type=int, metavar="N", help="train on the first N examples of the training split, in its stored order (default: all)")
    parser.add_argument("--mixed-precision", action="store_true", help="float16 on GPU, bfloat16 on CPU")
    parser.add_argument("--data-dir", help="TFDS data directory (prepared datasets, offline use); fashion-mnist: the folder of its four files, or a TFDS data directory")
    parser.add_argument("--image-size", type=run_dataset.image_size_argument, metavar="N|HxW", help="read the images at this size (default: a folder's most common size, another dataset's own)")
    parser.add_argument("--channels", type=int, choices=(1, 3), help="read the images gray (1) or RGB (3; gray images repeated) (default: the dataset's)")
    parser.add_argument("--strategy", default=defaults["strategy"], help="auto, none; TensorFlow: mirrored, multiworker; JAX: data-parallel")
    parser.add_argument("--backup-every", type=int, default=defaults["backup_every"], help=f"optimizer steps between resume backups (default {defaults['backup_every']})")
    parser.add_argument("--deterministic", action="store_true", help="TensorFlow op determinism: a rerun or a resumed run gives bit-identical weights (slower)")
    _add_backend(parser)
    parser.add_argument("--config", metavar="FILE", help="start from this configuration: a JSON file (a run's config.json) or a .toml file; flags given override it")
    parser.add_argument("--print-config", action="store_true", help="print the resolved configuration as JSON and exit, writing nothing")


def _json_object(text):
    """The argparse type of `--model-kwargs`: a JSON object, as a dict."""
    try:
        value = json.loads(text)
    except ValueError as error:
        value = error
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"--model-kwargs must be a JSON object, e.g. '{{\"alpha\": 0.35}}'; got {text!r}.")
    return value


def _apply_config_file(args):
    """Gives the TrainConfig fields of `--config FILE` that no flag gave
    (`_leave_unset`) the file's values; flags override the file.

    `dropact compare` sets activation, p and run_dir per run: a run's
    config.json holds them, and they are left out.
    """
    from keras_dropact.training.config import read_config_file

    values = read_config_file(args.config)
    skipped = ("activation", "p", "run_dir") if args.command == "compare" else ()
    for name, value in values.items():
        # run_dir has no `_leave_unset` default: None when not given.
        unset = getattr(args, name, None) is None if name == "run_dir" else not hasattr(args, name)
        if name not in skipped and unset:
            setattr(args, name, value)


def _leave_unset(parser):
    """Flags of TrainConfig fields that are not typed stay unset (argparse.SUPPRESS):
    TrainConfig's default applies, and `--resume` (or `compare`'s record)
    compares only what was given."""
    defaults = _train_defaults()
    for action in parser._actions:
        if action.dest in defaults and action.dest != "run_dir":
            action.default = argparse.SUPPRESS


def _given_config(args):
    """The TrainConfig fields the command line gave (`_leave_unset`), but run_dir."""
    from keras_dropact.training.config import TrainConfig

    return {
        name: getattr(args, name)
        for name in TrainConfig.__dataclass_fields__
        if name != "run_dir" and hasattr(args, name)
    }


def _add_train(subparsers):
    from keras_dropact.layers import ACTIVATIONS
    from keras_dropact.training import stops

    defaults = _train_defaults()
    parser = subparsers.add_parser(
        "train",
        help="train a network",
        description=(
            "Train a network with model.fit. With no flags: a quick offline run "
            f"({defaults['model']} on {defaults['dataset']}, a couple "
            "of minutes on 2 CPU cores). Recipe values can be overridden by flags."
        ),
        epilog=f"Exit codes: {stops.EXIT_CODES}. See docs/guides/training.md.",
    )
    _add_run_flags(parser)
    parser.add_argument("--activation", default=defaults["activation"], choices=ACTIVATIONS)
    parser.add_argument("--p", type=float, default=defaults["p"], help=f"probability of keeping the nonlinearity (default {defaults['p']})")
    parser.add_argument("--run-dir", help="where to write the run (default runs/MODEL-DATASET-ACTIVATION-TIME)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir exactly where its last backup left it (docs/guides/training.md)")
    _leave_unset(parser)
    parser.set_defaults(handler=_train)


def _train(args, signals):
    import keras

    from keras_dropact.training import stops
    from keras_dropact.training.config import TrainConfig
    from keras_dropact.training.run import Run

    given = _given_config(args)
    if args.resume:
        if not args.run_dir:
            raise ValueError("--resume needs --run-dir, the run to continue.")
        run = Run.resume(args.run_dir)
        _check_resume_flags(run.config, given)
    else:
        run = Run.new(TrainConfig(run_dir=args.run_dir, **given))
    if args.print_config:
        print(json.dumps(run.config.to_dict(), indent=2))
        return 0
    if args.resume:
        previous = run.ended()
        if previous is not None:
            print(
                f"dropact train: {args.run_dir} already finished (test error "
                f"{100 * previous.test_error:.2f}%); nothing to do."
            )
            return 0
        saved = run.config.backend
        if saved is not None and saved != keras.backend.backend():
            _switch_backend(saved, None if args.restarts else args.argv,
                            f"{args.run_dir} trains on {saved} (its config.json)")
    _enable_jax_compilation_cache()
    try:
        results = run.fit(signals=signals)
    except stops.TrainingInterrupted as stop:
        print(f"dropact train: {stop}", file=sys.stderr)
        return 128 + stop.signum
    except stops.TrainingDiverged as error:
        print(f"dropact train: error: {error}", file=sys.stderr)
        return stops.EXIT_DIVERGED
    speed, config = results.images_per_second, results.config
    converted = "" if results.converted_sites is None else f", {results.converted_sites} sites"
    print(
        f"\n{config['model']} on {config['dataset']} ({config['activation']}{converted}): test error "
        f"{100 * results.test_error:.2f}%, test loss {results.test_loss:.4f}, "
        f"{'-' if speed is None else f'{speed:.0f}'} images/s. Run: {config['run_dir']}"
    )
    return 0


def _add_compare(subparsers):
    from keras_dropact.training import stops

    parser = subparsers.add_parser(
        "compare",
        help="does an activation help my model on my data? paired runs, arms x seeds",
        description=(
            "Train the same setup (every `dropact train` flag but --activation, --p, "
            "--run-dir and --resume) once per arm and seed, seeds shared across arms, "
            "and write OUT/report.md and report.json: errors with 95% intervals, "
            "differences to the first arm paired by seed, learning curves. Rerunning "
            "the command continues a killed comparison (needs the repro extra)."
        ),
        epilog=f"Exit codes: {stops.EXIT_CODES}. See docs/guides/comparing.md.",
    )
    _add_run_flags(parser)
    parser.add_argument("--arm", action="append", required=True, metavar="ARM",
                        help="an activation setting: relu, leaky_relu, rrelu, dropact, "
                        "dropact:p=P or leaky_relu:p=P; give it at least twice, the first "
                        "is the reference")
    parser.add_argument("--seeds", type=int, default=5,
                        help="runs per arm, seeds --seed .. --seed + N - 1 (default 5)")
    parser.add_argument("--out", required=True,
                        help="the comparison's folder: new, empty, or one this command wrote")
    parser.add_argument("--verbose", type=int, default=0, choices=(0, 1, 2),
                        help="Keras fit verbosity (default 0: one line per run)")
    _leave_unset(parser)
    parser.set_defaults(handler=_compare)


def _compare(args, signals):
    import shlex

    from keras_dropact.interrupts import Interrupted
    from keras_dropact.repro import compare
    from keras_dropact.repro import compare_report
    from keras_dropact.training import stops

    command = shlex.join(["dropact", *args.argv])
    plan = compare.Plan(_given_config(args), args.arm, args.seeds, args.out, command)
    if args.print_config:
        print(json.dumps(plan.record, indent=2))
        return 0
    _enable_jax_compilation_cache()
    try:
        report = compare.run(plan, signals=signals, verbose=args.verbose)
    except Interrupted as stop:
        print(f"dropact compare: {stop}", file=sys.stderr)
        return 128 + stop.signum
    print(f"\nReport: {os.path.join(args.out, compare_report.REPORT_MD)}")
    if report["diverged"]:
        print(f"dropact compare: error: {len(report['diverged'])} run(s) diverged "
              f"({', '.join(report['diverged'])}); the report leaves them out.", file=sys.stderr)
        return stops.EXIT_DIVERGED
    return 0


def _enable_jax_compilation_cache():
    """On JAX, keeps compiled training steps on disk for the next run.

    A resumed run, or the next seed of a study, then loads its programs
    instead of compiling them again (`keras_dropact.jax_config`;
    docs/reports/performance.md). `JAX_COMPILATION_CACHE_DIR` chooses the folder,
    `JAX_ENABLE_COMPILATION_CACHE=false` switches the cache off.
    """
    import keras

    if keras.backend.backend() == "jax":
        from keras_dropact.jax_config import enable_compilation_cache

        enable_compilation_cache()


def _check_resume_flags(config, given):
    """Refuses flags that would change a resumed run (its config.json rules)."""
    from keras_dropact.training import run_dir as rd

    saved = config.to_dict()
    changed = [
        f"--{name.replace('_', '-')} {value!r} (saved: {saved[name]!r})"
        for name, value in given.items()
        # A run of an earlier version records no backend: --backend picks it.
        if saved.get(name) != value and not (name == "backend" and saved[name] is None)
    ]
    if changed:
        raise ValueError(
            f"--resume continues {config.run_dir} with the configuration in its "
            f"{rd.CONFIG}; these flags would change it: {', '.join(changed)}. "
            "Drop them, or start a new run in another --run-dir."
        )


def _add_evaluate(subparsers):
    parser = subparsers.add_parser("evaluate", help="test error and loss of a trained model")
    parser.add_argument("source", metavar="RUN_DIR_OR_MODEL")
    parser.add_argument("--dataset", help="default: the dataset the run trained on")
    parser.add_argument("--data-dir")
    parser.add_argument("--batch-size", type=int, default=256)
    _add_backend(parser)
    parser.set_defaults(handler=_evaluate)


def _evaluate(args):
    from keras_dropact.training.evaluate import evaluate

    result = evaluate(args.source, dataset=args.dataset, data_dir=args.data_dir, batch_size=args.batch_size)
    print(json.dumps(result, indent=2))
    return 0


def _add_export(subparsers):
    from keras_dropact.training.export import FORMATS

    parser = subparsers.add_parser("export", help="export a trained model for serving")
    parser.add_argument("source", metavar="RUN_DIR")
    parser.add_argument("--format", default="saved_model", choices=FORMATS)
    parser.add_argument("--name", help="model name (default: the run directory's name)")
    parser.add_argument("--version", type=int, help="version number (default: the next free one)")
    parser.add_argument("--root", default="saved_models", help="export root (default saved_models/)")
    parser.add_argument("--dataset", help="the dataset a bare .keras file was trained on (default: the run's)")
    parser.set_defaults(handler=_export)


def _export(args):
    from keras_dropact.training.export import export

    result = export(args.source, args.format, name=args.name, version=args.version, root=args.root, dataset=args.dataset)
    print(json.dumps(result, indent=2))
    return 0


def _add_predict(subparsers):
    parser = subparsers.add_parser(
        "predict",
        help="top-k classes of image files",
        description=(
            "Classify PNG/JPEG/GIF/BMP files of any size with a run directory, a .keras "
            "file (with --dataset) or an exported SavedModel version folder. Images are "
            "converted, resized and normalised as the serve_image_bytes signature does. "
            "Exit status 1 if a file could not be read (the others are still answered)."
        ),
    )
    parser.add_argument("source", metavar="SOURCE", help="run directory, .keras file or SavedModel folder")
    parser.add_argument("images", metavar="IMAGE", nargs="+")
    parser.add_argument("--dataset", help="the dataset a bare .keras file was trained on (default: the run's)")
    parser.add_argument("--top-k", type=int, default=5, help="classes per image (default 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON list instead of text")
    parser.set_defaults(handler=_predict)


def _predict(args):
    from keras_dropact.training.predict import predict

    answers = predict(args.source, args.images, top_k=args.top_k, dataset=args.dataset)
    if args.json:
        print(json.dumps(answers, indent=2))
    for answer in answers:
        if "error" in answer:
            print(f"dropact predict: error: {answer['error']}", file=sys.stderr)
        elif not args.json:
            print(_printable(answer["file"]))
            for row in answer["predictions"]:
                print(_printable(
                    f"  {row['probability']:.4f}  {row['class_name']} (class {row['class_id']})"))
    return 1 if any("error" in answer for answer in answers) else 0


def _printable(text):
    """`text` as any stdout can print it: bytes of a file name that are not
    UTF-8 (file names need not be) and characters stdout cannot encode as
    backslash escapes (`\\xff`), instead of a UnicodeEncodeError."""
    encoding = sys.stdout.encoding or "utf-8"
    text = os.fsencode(text).decode("utf-8", "backslashreplace")
    return text.encode(encoding, "backslashreplace").decode(encoding)


def _add_publish(subparsers):
    from keras_dropact.training.publish import DEFAULT_LICENSE

    parser = subparsers.add_parser(
        "publish",
        help="share a trained model: a folder (or hf://USER/NAME) loaded with one call",
        description=(
            "Write a finished run's model as a folder that keras_dropact.models.from_preset "
            "loads with one call (keras-hub's preset layout: config.json, model.weights.h5, "
            "metadata.json, and README.md, a model card generated from the run's records). "
            "The model takes the dataset's raw images. OUT_DIR must be new or empty; "
            "hf://USER/NAME uploads it to the Hugging Face Hub (needs the hub extra)."
        ),
        epilog="See docs/guides/sharing.md.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a finished run directory")
    parser.add_argument("out", metavar="OUT_DIR", help="a new or empty folder, or hf://USER/NAME")
    parser.add_argument("--license", default=DEFAULT_LICENSE,
                        help=f"the model's licence, a Hugging Face identifier (default {DEFAULT_LICENSE})")
    parser.add_argument("--private", action="store_true",
                        help="hf://: create the repository private")
    parser.set_defaults(handler=_publish)


def _publish(args):
    from keras_dropact.training.publish import publish

    result = publish(args.run_dir, args.out, license=args.license,
                     comparison=_comparison_of(args.run_dir), private=args.private)
    print(json.dumps(result, indent=2))
    return 0


def _comparison_of(run_dir):
    """What `dropact compare` says of the run's arm (`repro.compare.comparison_of_run`),
    or None; without the repro extra, which `dropact compare` needs, no run is one of its."""
    try:
        from keras_dropact.repro.compare import comparison_of_run
    except MissingExtraError:
        return None
    return comparison_of_run(run_dir)


def _add_recipes(subparsers):
    parser = subparsers.add_parser("recipes", help="list the training recipes")
    parser.set_defaults(handler=_recipes)


def _recipes(args):
    from keras_dropact.training import recipes

    print(f"{'recipe':<24}{'epochs':>7}{'batch':>7}{'lr':>7}  {'milestones (x gamma)':<22}{'wd':>8}  nesterov  description")
    for name in recipes.names():
        r = recipes.get(name)
        steps = f"{','.join(map(str, r.milestones))} (x{r.gamma})"
        print(f"{name:<24}{r.epochs:>7}{r.batch_size:>7}{r.lr:>7}  {steps:<22}{r.weight_decay:>8}  {str(r.nesterov):<8}  {r.description}")
    return 0


def _add_repro(subparsers):
    from keras_dropact.repro import command

    command.add_parser(subparsers)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="dropact",
        description=(
            "Drop-Activation (arXiv 1811.05850) for Keras 3: train the paper's "
            "networks, evaluate and export them."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_add_train, _add_compare, _add_evaluate, _add_export, _add_predict, _add_publish,
                _add_recipes, _add_repro):
        add(subparsers)
    return parser


def _switch_backend(backend, argv, why=None):
    """Runs this command again with KERAS_BACKEND=backend (never returns).

    Only the `dropact` process itself (argv None) restarts; a caller that
    passes argv has Keras loaded in its own process and gets an error.
    `why` it must: default `--backend BACKEND`.
    """
    import keras

    loaded = keras.backend.backend()
    if argv is not None or os.environ.get("KERAS_BACKEND") == backend:
        raise RuntimeError(
            f"{why or f'--backend {backend}'}: Keras is already loaded with the {loaded!r} "
            f"backend in this process. Set KERAS_BACKEND={backend} before Keras is "
            f"imported (e.g. KERAS_BACKEND={backend} dropact ...)."
        )
    if importlib.util.find_spec(backend) is None:
        raise MissingExtraError(
            f"--backend {backend} needs {backend!r}, which is not installed. "
            f"Install it with: pip install 'keras-dropact[{'jax' if backend == 'jax' else 'train'}]'"
        )
    os.environ["KERAS_BACKEND"] = backend
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "keras_dropact.cli", *sys.argv[1:]])


def main(argv=None):
    """Runs `dropact ARGV` (default: the command line); returns its exit code.

    SIGINT and SIGTERM are held from the command's first instruction
    (`keras_dropact.interrupts`): one that arrives while the command starts
    stops it with one line; `dropact train` and `dropact compare` hand them
    to their runs, which stop where nothing is lost; the other commands stop
    at once, removing what they had half-written. Either way: one line and
    128 + the signal. A file that cannot be written (a full disk) is one line
    and exit 74.
    """
    with interrupts.command_signals() as signals:
        try:
            parser = build_parser()
        except MissingExtraError as error:  # A core install: no `train` extra.
            print(f"dropact: error: {error}", file=sys.stderr)
            return 2
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 0
        if signals.received is not None:
            name = signal.Signals(signals.received).name
            print(f"dropact {args.command}: interrupted by {name} before the command started; "
                  "nothing was done.", file=sys.stderr)
            return 128 + signals.received
        if args.command in ("train", "compare"):
            args.argv, args.restarts = (sys.argv[1:] if argv is None else list(argv)), argv is None
            command = lambda: args.handler(args, signals)  # noqa: E731
        else:
            signals.at_once = True
            command = lambda: args.handler(args)  # noqa: E731
        return _stopped_in_one_line(args, argv, command)


def _stopped_in_one_line(args, argv, command):
    """`_run(args, argv, command)`; a signal or a file that cannot be
    written is one line and its exit code."""
    from keras_dropact.training import stops

    try:
        return _run(args, argv, command)
    except (KeyboardInterrupt, interrupts.StoppedAtOnce) as stop:
        signum = getattr(stop, "signum", signal.SIGINT)
        print(f"dropact {args.command}: interrupted by {signal.Signals(signum).name}.",
              file=sys.stderr)
        return 128 + signum
    except interrupts.Interrupted as stop:  # A training run of `train`, `compare` or `repro`.
        print(f"dropact {args.command}: {stop}", file=sys.stderr)
        return 128 + stop.signum
    except stops.CannotWrite as error:
        print(f"dropact {args.command}: error: {error}", file=sys.stderr)
        if argv is None:
            # A write that failed inside HDF5 leaves h5py objects whose
            # cleanup crashes the interpreter (h5py issue 914): end now,
            # while the error still holds them.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(stops.EXIT_CANNOT_WRITE)
        return stops.EXIT_CANNOT_WRITE


def _run(args, argv, command):
    """`command()` on the backend `args` asks for; the errors a user can fix
    are one line and exit code 2."""
    import keras

    try:
        if getattr(args, "config", None) is not None:
            _apply_config_file(args)
        backend = getattr(args, "backend", None)
        if args.command == "export":
            # Serving signatures are TensorFlow graphs; a .keras file of any
            # backend loads there unchanged.
            backend = "tensorflow"
        if backend is not None and backend != keras.backend.backend():
            _switch_backend(backend, argv)
        return command()
    except (ValueError, FileExistsError, FileNotFoundError, RuntimeError, MissingExtraError) as error:
        print(f"dropact {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
