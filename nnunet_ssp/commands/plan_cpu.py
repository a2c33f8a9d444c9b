"""`nnunet-ssp plan-cpu`: plan and preprocess a dataset with a CPU-sized network."""

import argparse

from nnunet_ssp.commands import add_command, add_processes_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the plan-cpu subcommand."""
    p = add_command(subparsers, "plan-cpu", _run, description=_DESCRIPTION,
                    help="plan and preprocess with a CPU-sized network (plans nnUNetPlansCPU)")
    p.add_argument("-d", "--dataset", type=int, required=True, help="dataset ID")
    p.add_argument("-c", "--configurations", nargs="+", default=["2d"], help="configurations to preprocess (2d)")
    add_processes_argument(p, "processes for preprocessing (2)")
    p.add_argument("--batch-size", type=int, default=None, help="fix the batch size instead of nnU-Net's choice")
    p.add_argument("--planner", default="ExperimentPlanner",
                   help="nnU-Net's planner class (ExperimentPlanner: PlainConvUNet; nnUNetPlannerResEncM, L or XL: "
                        "ResidualEncoderUNet)")
    p.add_argument("--plans-name", default=None,
                   help="plans identifier to write (default: the planner's plans name + CPU, e.g. nnUNetPlansCPU)")


def _run(args: argparse.Namespace) -> None:
    from nnunet_ssp.cpu_plans import plan_and_preprocess_cpu
    name = plan_and_preprocess_cpu(args.dataset, args.configurations, args.num_processes, args.batch_size,
                                   args.plans_name, args.planner)
    print(f"Planned and preprocessed dataset {args.dataset} with plans {name}; train with -p {name}.")


_DESCRIPTION = (
    "Run nnU-Net's fingerprint extraction (if missing), one of its planners with half the features "
    "per stage (16..256) and its preprocessing. Train with `-p nnUNetPlansCPU`, or with the plans "
    "name printed for another planner (nnUNetPlannerResEncM: nnUNetResEncUNetMPlansCPU).")
