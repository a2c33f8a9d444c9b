"""`nnunet-ssp convert-acdc`, `convert-mnms` and `convert-mnms2`."""

import argparse
from pathlib import Path
from typing import Callable

from nnunet_ssp.commands import add_command

_OUTPUT = (
    "Writes $nnUNet_raw/DatasetXXX_NAME (imagesTr/labelsTr with the ED and ES frames of the training subjects as "
    "cases <subject>_frameYY, imagesTs/labelsTs for test subjects, dataset.json, cines.json listing every 4D cine "
    "with its split and 0-based ED/ES indices) and five folds grouped by subject as splits_final.json in the raw "
    "folder and, when nnUNet_preprocessed is set, in $nnUNet_preprocessed/DatasetXXX_NAME (nnUNetv2_plan_and_"
    "preprocess keeps it there, and copies the raw one there if it is absent). Python: "
    "nnunet_ssp.converters.write_subject_splits(ID) rewrites both. A flat input folder holds out test subjects "
    "with --test-subjects K (a random draw with the fixed seed 12345) or --test-list FILE.")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the convert-acdc, convert-mnms and convert-mnms2 subcommands."""
    p = add_command(
        subparsers, "convert-acdc", _run_acdc, help="convert an ACDC-layout folder into an nnU-Net raw dataset",
        description="Convert an ACDC-layout folder (official training/ and testing/, or a flat folder of "
                    "patient folders with <s>_4d.nii.gz, <s>_frameYY[_gt].nii.gz and Info.cfg) into an nnU-Net "
                    "raw dataset; labels RV 1, MYO 2, LV 3. " + _OUTPUT)
    _add_common_arguments(p, default_name="ACDC")
    _add_csv_command(
        subparsers, "convert-mnms", "M&Ms-layout folder", "MNMs", _run_mnms,
        description="Convert an M&Ms-layout folder (official Training/Labeled, Validation and Testing, the last "
                    "two as test set, or a flat folder of subject folders with <s>_sa.nii.gz and <s>_sa_gt.nii.gz) "
                    "into an nnU-Net raw dataset; labels LV 1, MYO 2, RV 3; case frame YY = 0-based index + 1. ",
        csv_help="information CSV with columns External code, ED, ES (0-based) and optionally Vendor, "
                 "VendorName, Centre")
    _add_csv_command(
        subparsers, "convert-mnms2", "M&Ms-2 folder", "MNMs2", _run_mnms2,
        description="Convert an M&Ms-2 folder (the release's dataset/: subject folders with <s>_SA_CINE.nii.gz, "
                    "<s>_SA_ED.nii.gz, <s>_SA_ES.nii.gz and their _gt label maps) into an nnU-Net raw dataset; "
                    "labels LV 1, MYO 2, RV 3; each labeled frame is found in the cine by its voxels, unless the "
                    "CSV has ED and ES columns (0-based); case frame YY = 0-based index + 1. A subject with bad "
                    "files (missing, unreadable, a frame on another grid than its cine), and a subject the CSV "
                    "names without a folder, is skipped with a warning and listed at the end; the others are "
                    "converted. ",
        csv_help="the release's dataset_information.csv (SUBJECT_CODE and optionally DISEASE, VENDOR, "
                 "SCANNER, FIELD, ED, ES)")


def _add_csv_command(subparsers: argparse._SubParsersAction, name: str, source: str, default_name: str,
                     func: Callable, description: str, csv_help: str) -> None:
    p = add_command(subparsers, name, func, help=f"convert an {source} into an nnU-Net raw dataset",
                    description=description + _OUTPUT)
    p.add_argument("--csv", required=True, type=Path, help=csv_help)
    _add_common_arguments(p, default_name)


def _add_common_arguments(p: argparse.ArgumentParser, default_name: str) -> None:
    p.add_argument("-i", "--input", required=True, type=Path, help="the source folder")
    p.add_argument("-d", "--dataset-id", required=True, type=int, help="nnU-Net dataset ID (1 to 999)")
    p.add_argument("--name", default=default_name, help=f"dataset name after DatasetXXX_ (default {default_name})")
    holdout = p.add_mutually_exclusive_group()
    holdout.add_argument("--test-subjects", type=int, metavar="K",
                         help="flat folder only: hold out K subjects (seeded random draw) as the test set")
    holdout.add_argument("--test-list", type=Path, metavar="FILE",
                         help="flat folder only: hold out the subjects named in FILE, one a line")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing raw dataset of that ID and name (and its five folds: folds make-splits "
                        "appended are dropped, with a warning)")


def _run_acdc(args: argparse.Namespace) -> None:
    from nnunet_ssp.converters import convert_acdc
    print(convert_acdc(args.input, args.dataset_id, args.name, args.test_subjects, args.test_list,
                       args.overwrite).summary())


def _run_mnms(args: argparse.Namespace) -> None:
    from nnunet_ssp.converters import convert_mnms
    print(convert_mnms(args.input, args.csv, args.dataset_id, args.name, args.test_subjects, args.test_list,
                       args.overwrite).summary())


def _run_mnms2(args: argparse.Namespace) -> None:
    from nnunet_ssp.converters import convert_mnms2
    print(convert_mnms2(args.input, args.csv, args.dataset_id, args.name, args.test_subjects, args.test_list,
                        args.overwrite).summary())
