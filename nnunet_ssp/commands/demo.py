"""`nnunet-ssp demo`: the main job on the built-in phantom."""

import argparse

from nnunet_ssp.commands import add_command, add_processes_argument
from nnunet_ssp.defaults import DEMO_EPOCHS, DEMO_ITERS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the demo subcommand."""
    p = add_command(subparsers, "demo", _run, description=_DESCRIPTION,
                    help="run the whole pretrain / fine-tune / evaluate question on the synthetic phantom")
    p.add_argument("--out", default="ssp_demo", help="folder for everything the demo writes (ssp_demo)")
    p.add_argument("--labeled", "--labelled", dest="labeled", type=int, nargs="+", default=[2],
                   help="labeled-subject counts (2)")
    p.add_argument("--epochs", type=int, default=None, help=f"pretraining and fine-tuning epochs ({DEMO_EPOCHS})")
    p.add_argument("--iters", type=int, default=None, help=f"iterations per epoch ({DEMO_ITERS})")
    add_processes_argument(p, "processes for data preparation (2)")


def _run(args: argparse.Namespace) -> None:
    from dataclasses import replace
    from pathlib import Path

    from nnunet_ssp.demo import DemoSettings, run_demo
    from nnunet_ssp.errors import InputError

    if min(args.labeled) < 1 or (args.epochs is not None and args.epochs < 1) or \
            (args.iters is not None and args.iters < 1):
        raise InputError("--labeled, --epochs and --iters must be at least 1.")
    settings = replace(DemoSettings(), labeled=tuple(args.labeled), num_processes=args.num_processes)
    if args.epochs is not None:
        settings = replace(settings, pretrain_epochs=args.epochs, finetune_epochs=args.epochs)
    if args.iters is not None:
        settings = replace(settings, iters=args.iters)
    run_demo(Path(args.out), settings)


_DESCRIPTION = (
    "Generate phantom cines, convert them, plan and preprocess with a CPU-sized network, prepare "
    "the unlabeled pool, pretrain MIM, fine-tune on few labeled subjects and train nnU-Net's "
    "baseline on the same schedule, predict held-out subjects and report 3D Dice (table, plot, "
    "figure of predictions). Uses its own nnU-Net data roots below --out; rerunning resumes.")
