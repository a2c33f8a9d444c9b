"""`nnunet-ssp make-splits`: nested subject-level label-efficiency folds appended to splits_final.json."""

import argparse

from nnunet_ssp.commands import (add_command, add_configuration_argument, add_dataset_argument,
                                 add_plans_argument)


def add_split_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments that choose the folds, shared with `nnunet-ssp benchmark`."""
    p.add_argument("--subjects", type=int, nargs="+", default=[1, 2, 5, 10], metavar="N",
                   help="numbers of labeled subjects (default 1 2 5 10)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], metavar="S",
                   help="one nested draw of labeled subjects per seed (default 0 1 2)")
    p.add_argument("--val-subjects", type=int, default=None, metavar="K",
                   help="number of validation subjects shared by all folds (default 20 %% of the subjects, at "
                        "least 1)")
    p.add_argument("--subject-pattern", default=None, metavar="RE",
                   help="regular expression searched in each case id whose first group is the subject (default: "
                        "everything before '_frame')")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the make-splits subcommand."""
    p = add_command(subparsers, "make-splits", _run, description=_DESCRIPTION,
                    help="append nested subject-level label-efficiency folds to splits_final.json")
    add_dataset_argument(p)
    add_split_arguments(p)
    add_plans_argument(p, "also check that every training case is preprocessed for configuration -c of these "
                          "plans (e.g. nnUNetPlans)", default=None)
    add_configuration_argument(p, "configuration whose preprocessed cases -p checks (2d)")


def _run(args: argparse.Namespace) -> None:
    from nnunet_ssp.splits import make_splits
    print(make_splits(args.dataset, args.subjects, args.seeds, args.val_subjects, args.subject_pattern,
                      args.plans, args.configuration).summary())


_DESCRIPTION = (
    "Append one fold per (number of labeled subjects, seed) after nnU-Net's five folds in "
    "$nnUNet_preprocessed/DatasetXXX/splits_final.json (creating the five subject-grouped folds "
    "first when the file is missing). All cases of a subject stay together; one fixed set of "
    "validation subjects is shared by all folds; for one seed the subsets are nested (1 in 2 in 5 "
    "in 10). Re-running with the same arguments appends nothing. The sidecar splits_ssp.json beside "
    "it names each appended fold (fold, labeled_subjects, seed, subjects, validation_subjects). "
    "Python: nnunet_ssp.splits.make_splits and fold_index.")
