"""`nnunet-ssp audit`: what each stage of a dataset saw, by subject, and every overlap that must not exist."""

import argparse
from pathlib import Path

from nnunet_ssp.commands import add_command, add_configuration_argument, add_dataset_argument, add_plans_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the audit subcommand."""
    p = add_command(subparsers, "audit", _run, description=_DESCRIPTION,
                    help="list the subjects each stage saw and every leak between them")
    add_dataset_argument(p)
    add_plans_argument(p, "plans identifier of the pool (nnUNetPlans)")
    add_configuration_argument(p, "nnU-Net configuration whose unlabeled pool to audit (2d)")
    p.add_argument("--checkpoint", nargs="+", action="extend", default=[], type=Path, metavar="CK",
                   help="pretraining checkpoints (checkpoint_final.pth) whose subjects to audit")


def _run(args: argparse.Namespace) -> int:
    from nnunet_ssp.audit import audit_dataset
    audit = audit_dataset(args.dataset, args.plans, args.checkpoint, args.configuration)
    print(audit.table())
    return 1 if audit.leaks else 0


_DESCRIPTION = (
    "One table of the subjects each stage of a dataset saw, named by the dataset's subject rule "
    "(nnunet_ssp.json beside splits_final.json; default <subject>_frameYY): the training and "
    "validation subjects of every fold of splits_final.json, the validation subjects make-splits' "
    "folds share, the test subjects (imagesTs, cines.json split test), the unlabeled pool of the "
    "plans' configuration -c (default 2d), and the subjects in the ssp record of each pretraining "
    "checkpoint (loaded with weights_only). Every overlap that must not exist is listed: a test "
    "subject in the pool, a test or shared validation subject in a pretraining, a subject in two of a fold's "
    "training, validation and test subjects. Exits 1 when there is one. A checkpoint without an "
    "ssp record is named and skipped. Python: nnunet_ssp.audit.audit_dataset.")
