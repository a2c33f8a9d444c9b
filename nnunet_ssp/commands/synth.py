"""`nnunet-ssp synth`: write the synthetic short-axis cine dataset (ACDC layout) and/or a preview picture."""

import argparse

from nnunet_ssp.commands import add_command


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the synth subcommand."""
    p = add_command(subparsers, "synth", _run, description=_DESCRIPTION,
                    help="generate synthetic short-axis cine MRI subjects in the ACDC layout")
    p.add_argument("-o", "--output", help="folder to write the subjects into (created if missing)")
    p.add_argument("-n", "--subjects", type=int,
                   help="number of subjects (required with -o; 5 when only a preview is asked for)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--size", type=int, metavar="PX",
                   help="square matrix size in pixels for every subject, e.g. 48 for fast tests "
                        "(default: 110-220 per subject)")
    p.add_argument("--spacing", type=float, metavar="MM",
                   help="in-plane pixel size in mm for every subject; without --size the matrix covers the "
                        "subject's 200-280 mm field of view (default: 1.2-2.0 mm per subject; with --size alone, "
                        "the field of view divided by the size)")
    p.add_argument("-np", "--processes", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--layout", choices=["acdc", "mnms2"], default="acdc",
                   help="folder layout: acdc (default), or mnms2 (001/001_SA_CINE.nii.gz, 001_SA_ED[_gt].nii.gz and "
                        "001_SA_ES[_gt].nii.gz with labels LV 1, MYO 2, RV 3, and dataset_information.csv, for "
                        "convert-mnms2)")
    p.add_argument("--preview", metavar="PNG",
                   help="also draw base/mid/apex slices at ED, mid-systole and ES of a subject per group into "
                        "this PNG; without -o the subjects are generated in a temporary folder")


def _run(args: argparse.Namespace) -> None:
    import tempfile
    import time
    from collections import Counter
    from pathlib import Path

    from nnunet_ssp.errors import InputError
    from nnunet_ssp.phantom import generate_phantom, preview_dataset

    if args.output is None and args.preview is None:
        raise InputError("Give an output folder with -o, a preview picture with --preview, or both.")
    if args.output is not None and args.subjects is None:
        raise InputError(f"Give the number of subjects to write into {args.output} with -n.")
    if args.preview is not None and args.layout != "acdc":
        raise InputError("--preview draws subjects in the ACDC layout; leave out --layout or --preview.")
    if args.preview is not None and Path(args.preview).is_dir():
        raise InputError(f"The preview path {args.preview} is a folder, not a PNG file name.")
    n_subjects = 5 if args.subjects is None else args.subjects
    options = dict(n_subjects=n_subjects, seed=args.seed, image_size=args.size, spacing=args.spacing,
                   num_processes=args.processes)
    if args.output is None:
        with tempfile.TemporaryDirectory(prefix="nnunet-ssp-synth-") as tmp:
            generate_phantom(tmp, **options)
            preview_dataset(tmp, args.preview, title=f"synthetic cine phantom, seed {args.seed}")
        print(f"Preview of {n_subjects} synthetic subjects (seed {args.seed}) written to {args.preview}.")
        return

    start = time.time()
    summaries = generate_phantom(args.output, **options, layout=args.layout)
    seconds = time.time() - start
    groups = Counter(s.group for s in summaries)
    print(f"Wrote {len(summaries)} subjects to {args.output} in {seconds:.1f} s (seed {args.seed}, "
          f"{args.processes} process{'es' if args.processes > 1 else ''}).")
    print("  groups:  " + ", ".join(f"{g} {groups[g]}" for g in sorted(groups)))
    print(f"  frames:  {min(s.frames for s in summaries)}-{max(s.frames for s in summaries)};  "
          f"slices: {min(s.slices for s in summaries)}-{max(s.slices for s in summaries)} "
          f"({min(s.slice_mm for s in summaries):.1f}-{max(s.slice_mm for s in summaries):.1f} mm apart)")
    print(f"  matrix:  {min(s.rows for s in summaries)}-{max(s.rows for s in summaries)} x "
          f"{min(s.columns for s in summaries)}-{max(s.columns for s in summaries)} px at "
          f"{min(s.pixel_mm for s in summaries):.2f}-{max(s.pixel_mm for s in summaries):.2f} mm")
    if args.preview is not None:
        preview_dataset(args.output, args.preview)
        print(f"  preview: {args.preview}")


_DESCRIPTION = (
    "Generate realistic synthetic short-axis bSSFP cine stacks in the ACDC folder layout "
    "(patientXXX/patientXXX_4d.nii.gz, ED/ES frames with labels RV 1, MYO 2, LV 3, Info.cfg), "
    "with the five ACDC groups (NOR, DCM, HCM, MINF, RV) in turn. The same seed gives "
    "byte-identical files whatever the number of processes. Default grid per subject: a field of "
    "view of 200-280 mm at the scanner's pixel size of 1.2-2.0 mm, i.e. matrices of 110-220 "
    "pixels; 6-14 slices 6-10 mm apart; 15-30 frames.")
