"""`nnunet-ssp prepare-unlabeled`: every frame of every cine into a dataset's unlabeled pool."""

import argparse
from pathlib import Path

from nnunet_ssp.commands import (
    add_command, add_configuration_argument, add_dataset_argument, add_plans_argument, add_processes_argument)

_DESCRIPTION = (
    "Preprocess every frame of a folder of 4D cines (NIfTI x, y, z, t; by default ACDC *_4d.nii.gz, M&Ms "
    "*_sa.nii.gz and M&Ms-2 *_SA_CINE.nii.gz, searched recursively) or of 3D images (one frame each) exactly as nnU-Net preprocesses the "
    "dataset's own images (same plans and configuration: transpose, crop to non-zero, normalisation, resampling), "
    "for self-supervised pretraining. Output: $nnUNet_preprocessed/DatasetXXX/<data_identifier>_unlabeled/ (e.g. "
    "nnUNetPlans_2d_unlabeled, never nnU-Net's own case folder) with one nnU-Net blosc2 case per frame, named "
    "<subject>_t<frame:03d>; manifest.csv with one row per stored slice (case, subject, frame, z, slice_index, "
    "num_slices, position, source); report.json with the plans, options, counts and every bad input. "
    "Subject id: the file name without its ending (.nii.gz, .nii, .nrrd, .mha, .mhd, .gipl) and without a "
    "trailing _4d, _sa or _SA_CINE; a 3D file <subject>_frameYY is frame YY-1 of <subject>, any other 3D file "
    "frame 0; with --subject-pattern (default: the pattern the dataset's make-splits recorded) the pattern's first "
    "group in the file name, a subject's 3D files being its frames 0, 1, ... in path order. "
    "The folder holds cines or frames as its first readable file does (or as --kind says). "
    "Position runs from base (0) to apex (1), (i + 0.5) / N over the original stack: increasing slice index runs "
    "towards the apex when the slice axis points left, anterior and inferior (direction (1, -1, -1) in LPS "
    "coordinates), otherwise the positions are reversed; --flip-base-apex flips a whole dataset whose geometry "
    "says the opposite of its anatomy. "
    "A second run skips the frames already there; a killed run resumes; a run on a pool another run is filling is "
    "refused. Bad files (other dimensionality, several "
    "channels, a coarsest axis other than the plans' slice axis, unreadable, NaN or infinite voxels, constant "
    "frames) are skipped with a warning and listed in the report. Test subjects of the dataset (images in its "
    "imagesTs by the dataset's subject rule, split \"test\" in its cines.json, and any input with a frame whose "
    "voxels equal a test image, whatever its name) are left out unless --allow-test-subjects; a frame equal to a "
    "training case of another subject stops the run before anything is written.")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the prepare-unlabeled subcommand."""
    p = add_command(subparsers, "prepare-unlabeled", _run, description=_DESCRIPTION,
                    help="preprocess every cine frame into a dataset's unlabeled pool")
    add_dataset_argument(p, "dataset ID or name (planned and preprocessed)")
    p.add_argument("-i", "--input", required=True, type=Path, help="folder of 4D cines or 3D frames")
    add_plans_argument(p, "plans identifier (nnUNetPlans)")
    add_configuration_argument(p)
    add_processes_argument(p, "processes, frames in parallel (2)")
    p.add_argument("--pattern", action="append", metavar="GLOB",
                   help="file name pattern, searched recursively; repeat for several (default *_4d.nii.gz, "
                        "*_sa.nii.gz and *_SA_CINE.nii.gz)")
    p.add_argument("--kind", choices=("auto", "4d", "3d"), default="auto",
                   help="whether the folder holds 4D cines or 3D frames (auto: as its first readable file)")
    p.add_argument("--exclude", nargs="+", action="extend", default=[], metavar="SUBJ",
                   help="subjects to keep out of the pool")
    p.add_argument("--allow-test-subjects", action="store_true",
                   help="also take the dataset's test subjects (imagesTs, cines.json split test)")
    p.add_argument("--subject-pattern", default=None, metavar="RE",
                   help="regular expression searched in each input file name (without its ending) whose first group "
                        "is the subject (default: the dataset's recorded pattern, else the file-name rule above)")
    p.add_argument("--flip-base-apex", action="store_true",
                   help="reverse the base-to-apex direction the image geometry gives, for the whole dataset")


def _run(args: argparse.Namespace) -> None:
    from nnunet_ssp.unlabeled import prepare_unlabeled
    from nnunet_ssp.unlabeled.sources import DEFAULT_PATTERNS
    dataset = int(args.dataset) if args.dataset.isdigit() else args.dataset
    result = prepare_unlabeled(dataset, args.input, args.plans, args.configuration, args.num_processes,
                               args.pattern or DEFAULT_PATTERNS, args.exclude, args.allow_test_subjects,
                               args.flip_base_apex, args.kind, args.subject_pattern)
    print(result.summary())
