"""`nnunet-ssp benchmark-speed`: pretraining steps, loaders and memory against nnU-Net's supervised step."""

import argparse
from pathlib import Path

from nnunet_ssp.commands import (
    add_command, add_configuration_argument, add_dataset_argument, add_device_argument, add_plans_argument,
    add_processes_argument)
from nnunet_ssp.methods import method_names


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the benchmark-speed subcommand."""
    p = add_command(subparsers, "benchmark-speed", _run, description=_DESCRIPTION,
                    help="time the SSP training steps against nnU-Net's own, side by side")
    add_dataset_argument(p, "dataset ID or name (planned and preprocessed)")
    add_configuration_argument(p)
    add_plans_argument(p, "plans identifier (nnUNetPlans)")
    add_device_argument(p, "cpu", ["cpu", "cuda"], "device (cpu)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads while measuring (default: torch's own); 1 with --clock cpu gives the most "
                        "stable numbers on a busy machine")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="which time the targets are judged on (wall); the table shows both")
    p.add_argument("--methods", nargs="+", choices=method_names(), default=method_names(),
                   help="SSP methods to time beside nnU-Net's trainer (default: all)")
    p.add_argument("--steps", type=int, default=30, help="timed rounds, one step of each trainer per round (30)")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps per trainer (3)")
    p.add_argument("--loader-batches", type=int, default=20,
                   help="batches timed from each loader alone; half as many live iterations (20)")
    p.add_argument("--cines", type=Path, default=None,
                   help="4D cines to time prepare-unlabeled on (default: those the unlabeled pool came from)")
    p.add_argument("--skip-prepare", action="store_true", help="do not time prepare-unlabeled")
    add_processes_argument(p, "processes of prepare-unlabeled and nnUNetv2_preprocess (2)")
    p.add_argument("--prepare-repeats", type=int, default=2, help="timed runs of each preprocessing command (2)")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the results as JSON")


def _run(args: argparse.Namespace) -> None:
    from nnunet_ssp.atomic import write_json
    from nnunet_ssp.speed import SpeedSettings, benchmark_speed

    settings = SpeedSettings(
        args.dataset, args.configuration, args.plans, args.device, threads=args.threads, clock=args.clock,
        methods=tuple(args.methods), steps=args.steps, warmup=args.warmup, loader_batches=args.loader_batches,
        prepare=not args.skip_prepare, cines=args.cines, prepare_processes=args.num_processes,
        prepare_repeats=args.prepare_repeats)
    report = benchmark_speed(settings)
    print(report.table())
    if args.json is not None:
        write_json(report.to_dict(), args.json)
        print(f"\nJSON: {args.json}")


_DESCRIPTION = (
    "In one process, on the same plans, configuration, fold 0, batch size and device: build "
    "nnU-Net's nnUNetTrainer and each nnUNetTrainerSSP_<METHOD> with nnU-Net's "
    "get_trainer_from_args, run each briefly with its own data loader (default workers, "
    "nnUNet_n_proc_DA) to record the resident-memory peak and the time waiting for data, time the "
    "loader alone, then time in interleaved rounds each trainer's real train_step and its bare "
    "network passes (the same forward and backward calls, nothing else). Also times "
    "prepare-unlabeled against nnUNetv2_preprocess on the same frames (the cines the dataset's "
    "unlabeled pool came from, or --cines). Prints a table of ratios and the targets; --json writes "
    "everything. Python: nnunet_ssp.speed.benchmark_speed.")
