"""The `dropact` command line: a thin layer that parses flags and calls the library."""

import argparse
import sys

from keras_dropact import __version__


def build_parser():
    parser = argparse.ArgumentParser(
        prog="dropact",
        description=(
            "Drop-Activation (arXiv 1811.05850) for Keras 3: train the paper's "
            "networks, evaluate and export them."
        ),
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
