"""The `dropact repro` subcommand: flags into the experiment functions."""

from keras_dropact.layers import DEFAULT_KEEP_PROBABILITY

EXPERIMENTS = ("fig2", "fig3", "fig4", "fig6", "theory", "table")


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "repro",
        help="reproduce the paper's figures and tables",
        description=(
            "Reproduce a figure or table of the paper. --scale cpu (default) uses the offline "
            "datasets and small setups; --scale paper the full recipes (GPU). Runs are resumable: "
            "rerunning a command skips every run whose results.json exists under --out."
        ),
    )
    parser.add_argument("experiment", choices=EXPERIMENTS)
    parser.add_argument("--dataset", help="fig2/fig4/fig6 (default: digits at cpu scale, "
                        "cifar10 for fig2 and cifar100 for fig4/fig6 at paper scale)")
    parser.add_argument("--model", help="fig4/fig6 model (default: the dataset's CPU setup, or resnet-164)")
    parser.add_argument("--setup", help="--scale cpu: the CPU setup of the dataset (fig2, fig4, table; "
                        "digits: simple-cnn; mnist1d: mlp-1d (default), mnist1d-mlp, mnist1d-cnn, "
                        "simple-cnn-1d)")
    parser.add_argument("--seeds", type=int, default=5, help="runs per configuration (default 5)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds are FIRST..FIRST+N-1 (default 0)")
    parser.add_argument("--out", default="runs/repro", help="output directory (default runs/repro, git-ignored)")
    parser.add_argument("--scale", default="cpu", choices=("cpu", "paper"))
    parser.add_argument("--p", type=float, default=DEFAULT_KEEP_PROBABILITY, help=f"Drop-Activation's p (not fig2; default {DEFAULT_KEEP_PROBABILITY})")
    parser.add_argument("--p-values", type=float, nargs="+", help="fig2: the p values (default 0.60..1.00 step 0.05)")
    parser.add_argument("--epochs", type=int, help="override the setup's epochs")
    parser.add_argument("--steps-per-epoch", type=int, help="limit each epoch to N steps (smoke tests)")
    parser.add_argument("--steps", type=int, help="fig3: full-batch training steps (default 1000)")
    parser.add_argument("--rows", nargs="+", default=(), help="table: keep rows whose 'table dataset model' "
                        "contains every pattern, e.g. --rows cifar100 resnet-164")
    parser.add_argument("--layer", help="fig6: the monitored layer (default block3_conv for simple-cnn, "
                        "else the last stage2* layer)")
    parser.add_argument("--verbose", type=int, default=0, choices=(0, 1, 2), help="Keras fit verbosity")
    parser.set_defaults(handler=run)
    return parser


def _checked_seeds(args):
    """The seeds of the runs, every integer flag in its range
    (`config.INT_RANGES`), before `--out` is made."""
    from keras_dropact.training.config import check_int
    from keras_dropact.training.config import check_seeds

    seeds = check_seeds("first_seed", args.first_seed, args.seeds)
    for name in ("epochs", "steps_per_epoch", "steps"):
        if getattr(args, name) is not None:
            check_int(name, getattr(args, name))
    return seeds


def run(args):
    import os

    seeds = _checked_seeds(args)
    if args.setup is not None and args.experiment not in ("fig2", "fig4", "table"):
        raise ValueError(f"--setup is for fig2, fig4 and table, not {args.experiment}.")
    os.makedirs(args.out, exist_ok=True)
    common = dict(epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, verbose=args.verbose)
    if args.experiment == "fig2":
        from keras_dropact.repro import fig2

        dataset = args.dataset or ("digits" if args.scale == "cpu" else "cifar10")
        p_values = tuple(args.p_values) if args.p_values else fig2.P_VALUES
        fig2.run(dataset, seeds, args.out, scale=args.scale, p_values=p_values, setup_name=args.setup, **common)
    elif args.experiment == "fig3":
        from keras_dropact.repro import fig3

        fig3.run(seeds, args.out, p=args.p, steps=args.steps or fig3.STEPS, verbose=args.verbose)
    elif args.experiment in ("fig4", "fig6"):
        from keras_dropact.repro import curves

        dataset = args.dataset or ("digits" if args.scale == "cpu" else "cifar100")
        if args.experiment == "fig4":
            curves.run_fig4(args.model, dataset, seeds, args.out, scale=args.scale, p=args.p,
                            setup=args.setup, **common)
        else:
            curves.run_fig6(args.model, dataset, seeds, args.out, scale=args.scale, p=args.p,
                            layer=args.layer, **common)
    elif args.experiment == "theory":
        from keras_dropact.repro import theory_checks

        theory_checks.run(args.out, seed=args.first_seed)
    else:
        from keras_dropact.repro import table

        table.run(seeds, args.out, scale=args.scale, patterns=args.rows, p=args.p, setup=args.setup, **common)
    return 0
