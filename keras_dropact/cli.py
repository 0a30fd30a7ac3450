"""The `dropact` command line: parses flags into library calls.

    dropact train     train a network (model.fit, recipes, resume)
    dropact evaluate  test error and loss of a run or a .keras model
    dropact export    SavedModel / ONNX / .keras for serving
    dropact recipes   list the training recipes
    dropact repro     reproduce the paper's figures and tables

Every subcommand is a thin wrapper over `keras_dropact.training`, which tests
and notebooks call directly.

`--backend jax|tensorflow` (train, evaluate, export) picks the Keras backend.
Keras reads KERAS_BACKEND once, when it is first imported, and importing
`keras_dropact` imports Keras; so when the flag asks for another backend than
the one loaded, `dropact` sets KERAS_BACKEND and re-executes itself
(`python -m keras_dropact.cli ...`) before doing anything else.
`KERAS_BACKEND=jax dropact ...` does the same without the restart.
"""

import argparse
import importlib.util
import json
import os
import sys

from keras_dropact import __version__
from keras_dropact.extras import MissingExtraError

BACKENDS = ("tensorflow", "jax")


def _add_backend(parser):
    parser.add_argument(
        "--backend", choices=BACKENDS,
        help="Keras backend (default: KERAS_BACKEND, else Keras' configured one); "
        "jax trains with keras.distribution (--strategy data-parallel)",
    )


def _add_train(subparsers):
    from keras_dropact.layers import ACTIVATIONS
    from keras_dropact.training.config import TrainConfig

    defaults = {name: field.default for name, field in TrainConfig.__dataclass_fields__.items()}
    parser = subparsers.add_parser(
        "train",
        help="train a network",
        description=(
            "Train a network with model.fit. With no flags: a quick offline run "
            f"({defaults['model']} on {defaults['dataset']}, a couple "
            "of minutes on 2 CPU cores). Recipe values can be overridden by flags."
        ),
    )
    parser.add_argument("--model", default=defaults["model"], help="a preset of keras_dropact.models (see `python -c 'from keras_dropact import models; print(models.names())'`)")
    parser.add_argument("--dataset", default=defaults["dataset"], help="cifar10, cifar100, svhn, emnist-balanced, digits, mnist1d or folder:PATH")
    parser.add_argument("--activation", default=defaults["activation"], choices=ACTIVATIONS)
    parser.add_argument("--p", type=float, default=defaults["p"], help=f"probability of keeping the nonlinearity (default {defaults['p']})")
    parser.add_argument("--augment", default=None, help="none, standard, cutout, autoaugment (default: the paper's for the dataset)")
    parser.add_argument("--recipe", default=None, help="a recipe of `dropact recipes` (default: the model's, or quick)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int, help="global batch size")
    parser.add_argument("--lr", type=float, help="initial learning rate")
    parser.add_argument("--weight-decay", type=float, help="PyTorch-style L2 coefficient")
    parser.add_argument("--dropout", type=float, help="WRN dropout between the two convolutions")
    parser.add_argument("--seed", type=int, default=defaults["seed"])
    parser.add_argument("--steps-per-epoch", type=int, help="limit each epoch to N steps (smoke tests)")
    parser.add_argument("--mixed-precision", action="store_true", help="float16 on GPU, bfloat16 on CPU")
    parser.add_argument("--data-dir", help="TFDS data directory (prepared datasets, offline use)")
    parser.add_argument("--run-dir", help="where to write the run (default runs/MODEL-DATASET-ACTIVATION-TIME)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last backup")
    parser.add_argument("--strategy", default=defaults["strategy"], help="auto, none; TensorFlow: mirrored, multiworker; JAX: data-parallel")
    parser.add_argument("--backup-every", type=int, default=defaults["backup_every"], help=f"steps between resume backups (default {defaults['backup_every']})")
    _add_backend(parser)
    parser.set_defaults(handler=_train)


def _train(args):
    from keras_dropact.training.config import TrainConfig
    from keras_dropact.training.train import train

    if args.resume:
        if not args.run_dir:
            raise ValueError("--resume needs --run-dir, the run to continue.")
        config = TrainConfig(run_dir=args.run_dir)
    else:
        config = TrainConfig(
            model=args.model,
            dataset=args.dataset,
            activation=args.activation,
            p=args.p,
            augment=args.augment,
            recipe=args.recipe,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            weight_decay=args.weight_decay,
            dropout=args.dropout,
            seed=args.seed,
            steps_per_epoch=args.steps_per_epoch,
            mixed_precision=args.mixed_precision,
            data_dir=args.data_dir,
            run_dir=args.run_dir,
            strategy=args.strategy,
            backup_every=args.backup_every,
        )
    results = train(config, resume=args.resume)
    print(
        f"\n{results['config']['model']} on {results['config']['dataset']} "
        f"({results['config']['activation']}): test error "
        f"{100 * results['test_error']:.2f}%, test loss {results['test_loss']:.4f}, "
        f"{results['images_per_second']:.0f} images/s. Run: {results['config']['run_dir']}"
    )
    return 0


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
    _add_backend(parser)
    parser.set_defaults(handler=_export)


def _export(args):
    from keras_dropact.training.export import export

    result = export(args.source, args.format, name=args.name, version=args.version, root=args.root)
    print(json.dumps(result, indent=2))
    return 0


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
    for add in (_add_train, _add_evaluate, _add_export, _add_recipes, _add_repro):
        add(subparsers)
    return parser


def _switch_backend(backend, argv):
    """Runs this command again with KERAS_BACKEND=backend (never returns).

    Only the `dropact` process itself (argv None) restarts; a caller that
    passes argv has Keras loaded in its own process and gets an error.
    """
    import keras

    loaded = keras.backend.backend()
    if argv is not None or os.environ.get("KERAS_BACKEND") == backend:
        raise RuntimeError(
            f"--backend {backend}: Keras is already loaded with the {loaded!r} "
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
    import keras

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        backend = getattr(args, "backend", None)
        if backend is not None and backend != keras.backend.backend():
            _switch_backend(backend, argv)
        return args.handler(args)
    except (ValueError, FileExistsError, FileNotFoundError, RuntimeError, MissingExtraError) as error:
        print(f"dropact {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
