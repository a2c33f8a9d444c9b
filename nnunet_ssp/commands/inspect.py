"""`nnunet-ssp inspect`: check a checkpoint without running its code, before nnU-Net's loaders unpickle it."""

import argparse
import json

from nnunet_ssp.commands import add_command, add_configuration_argument, add_dataset_argument, add_plans_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the inspect subcommand."""
    p = add_command(subparsers, "inspect", _run, description=_DESCRIPTION,
                    help="show what a checkpoint holds and check that it fits your plans, without running its code")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a .pth file (e.g. fold_all/checkpoint_final.pth)")
    add_dataset_argument(p, "dataset ID or name whose plans to check the fit against", required=False)
    add_plans_argument(p, "plans identifier, with -d (nnUNetPlans)", default=None)
    add_configuration_argument(p, "configuration, with -d (2d)", default=None)
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _run(args: argparse.Namespace) -> None:
    from nnunet_ssp.errors import InputError
    from nnunet_ssp.inspection import inspect_checkpoint, report_lines
    if args.dataset is None and (args.plans or args.configuration):
        raise InputError("-p and -c name plans of a dataset: give -d with them to check the fit.")
    result = inspect_checkpoint(args.checkpoint, args.dataset, args.plans or "nnUNetPlans", args.configuration or "2d")
    print(json.dumps(result, indent=1) if args.json else "\n".join(report_lines(result)))


_DESCRIPTION = (
    "Load CHECKPOINT with torch.load(weights_only=True) only and print its SSP record (method, "
    "trainer, architecture, plans, configuration, patch size, spacing, normalisation, input "
    "channels, subjects and slices seen, iterations, package version). With -d, -p and -c, build "
    "the network those plans build and check that the checkpoint's encoder and decoder weights "
    "fit it. Run it before `-pretrained_weights` or `nnUNetv2_predict` with a file you did not "
    "make: those load with weights_only=False, which runs any code the file carries. Exit 0: safe "
    "(and fitting, when checked); 2: refused, unreadable or not fitting, with the reason.")
