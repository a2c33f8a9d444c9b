"""Subcommands of the `nnunet-ssp` CLI, one module each; heavy imports happen inside the runners."""

import argparse
from typing import Callable, Optional, Sequence


def add_command(subparsers: argparse._SubParsersAction, name: str, func: Callable, help: str,
                description: str) -> argparse.ArgumentParser:
    """Add subcommand `name`, run by `func`, with its one-line help and its description."""
    p = subparsers.add_parser(name, help=help, description=description)
    p.set_defaults(func=func)
    return p


def add_dataset_argument(p: argparse.ArgumentParser, help: str = "dataset ID or name", required: bool = True) -> None:
    """`-d/--dataset`: a dataset ID or name."""
    p.add_argument("-d", "--dataset", required=required, default=None, help=help)


def add_plans_argument(p: argparse.ArgumentParser, help: str, default: Optional[str] = "nnUNetPlans") -> None:
    """`-p/--plans`: a plans identifier."""
    p.add_argument("-p", "--plans", default=default, help=help)


def add_configuration_argument(p: argparse.ArgumentParser, help: str = "configuration (2d)",
                               default: Optional[str] = "2d") -> None:
    """`-c/--configuration`: one configuration of the plans."""
    p.add_argument("-c", "--configuration", default=default, help=help)


def add_device_argument(p: argparse.ArgumentParser, default: str, choices: Sequence[str], help: str) -> None:
    """`-device/--device`: the torch device, spelled as nnU-Net's `-device`."""
    p.add_argument("-device", "--device", default=default, choices=list(choices), help=help)


def add_processes_argument(p: argparse.ArgumentParser, help: str) -> None:
    """`-np/--num-processes`: how many worker processes (default 2)."""
    p.add_argument("-np", "--num-processes", type=int, default=2, help=help)
