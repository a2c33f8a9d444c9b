"""The `nnunet-ssp` command line: one argparse subcommand per module in `nnunet_ssp.commands`."""

import argparse
import importlib
import sys
from typing import List, Optional

from nnunet_ssp import __version__
from nnunet_ssp.errors import InputError

# Each module defines `register(subparsers)`, which adds its subcommand(s) with `func` set to the runner.
COMMAND_MODULES = (
    "environment",
    "synth",
    "convert",
    "plan_cpu",
    "prepare_unlabeled",
    "make_splits",
    "audit",
    "benchmark",
    "benchmark_speed",
    "demo",
    "inspect",
    "device_check",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="nnunet-ssp",
        description="Self-supervised pretraining for nnU-Net v2: data preparation, trainers, experiments.")
    parser.add_argument("--version", action="version", version=f"nnunet-ssp {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="<command>")
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"nnunet_ssp.commands.{name}").register(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except InputError as e:
        print(f"nnunet-ssp {args.command}: error: {e}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
