"""`nnunet-ssp device-check`: every part once, briefly, on this machine's device, with one table at the end."""

import argparse

from nnunet_ssp.commands import add_command, add_device_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the device-check subcommand."""
    p = add_command(subparsers, "device-check", _run, description=_DESCRIPTION,
                    help="pretrain, fine-tune, predict, evaluate and time briefly on this machine's device")
    add_device_argument(p, "cuda", ["cuda", "cpu"], "device (cuda)")
    p.add_argument("--tiny", action="store_true", help="tiny images, CPU-sized plans and 2 iterations per epoch")
    p.add_argument("-num_gpus", "--num-gpus", type=int, default=1,
                   help="processes to also pretrain on: nnU-Net's -num_gpus on CUDA, torchrun on the CPU (1: skip)")
    p.add_argument("--out", default="ssp_device_check", help="folder for everything the check writes "
                                                              "(ssp_device_check)")


def _run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from nnunet_ssp.device_check import device_check

    check = device_check(Path(args.out), args.device, args.tiny, args.num_gpus)
    print(check.table())
    if check.failure is not None:
        print(f"nnunet-ssp device-check: {check.failure}", file=sys.stderr)
        return 1
    return 0


_DESCRIPTION = (
    "On the synthetic phantom (below --out, with its own nnU-Net data roots): plans at nnU-Net's "
    "full size (--tiny: tiny images and CPU-sized plans), each SSP method pretrained for 2 epochs "
    "of 20 iterations (--tiny: 2), a fine-tune of 2 epochs from the MIM weights, prediction and "
    "evaluation of 2 test cases, benchmark-speed against nnUNetTrainer and, with -num_gpus above "
    "1, one pretraining on that many processes. On CUDA nnU-Net trains with mixed precision (AMP). "
    "Prints one table (seconds and peak CUDA memory per step) and writes device_check.json; exits "
    "with 1 and names the step when one fails. Python: nnunet_ssp.device_check.device_check.")
