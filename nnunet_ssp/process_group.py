"""The process group of a pretraining run on several processes, and the device each process trains on.

Two launchers start such runs. nnU-Net's own `nnUNetv2_train -num_gpus N` spawns N processes on one machine and
joins them with NCCL before any trainer exists. `torchrun` (one machine or several) starts the processes and only
describes the group in environment variables (WORLD_SIZE, RANK, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
MASTER_PORT); the trainer joins it here, with NCCL on CUDA and gloo on the CPU, before nnU-Net's constructor
looks for a group (`is_ddp`). nnU-Net then picks `cuda:<global rank>` for every distributed process; on a second
machine, or with `-device cpu`, that device does not exist, so `process_device` gives the right one.
"""

import os
from typing import Optional

import torch
from torch import distributed as dist

from nnunet_ssp.errors import InputError

TORCHRUN_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def torchrun_world_size() -> Optional[int]:
    """The number of processes torchrun started (all machines), or None when this process was not started by it."""
    if not all(name in os.environ for name in TORCHRUN_VARIABLES):
        return None
    return int(os.environ["WORLD_SIZE"])


def check_cuda_devices(processes: int, launcher: str) -> None:
    """Refuse to start `processes` CUDA processes on this machine when fewer CUDA devices are visible."""
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if processes <= available:
        return
    visible = {0: "no CUDA device is visible", 1: "only 1 CUDA device is visible"}.get(
        available, f"only {available} CUDA devices are visible")
    advice = f"ask for at most {available}, or" if available else "instead,"
    raise InputError(f"{launcher} asks for {processes} CUDA process{'es' if processes > 1 else ''} on this machine, "
                     f"but {visible} (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); "
                     f"{advice} train on the CPU with -device cpu.")


def join_torchrun_group(device: torch.device) -> None:
    """Join the process group torchrun describes, unless a group exists already or torchrun started one process."""
    world_size = torchrun_world_size()
    if dist.is_initialized() or world_size is None or world_size == 1:
        return
    if device.type == "cuda":
        check_cuda_devices(int(os.environ.get("LOCAL_WORLD_SIZE", world_size)), "torchrun --nproc-per-node")
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    elif device.type != "cpu":
        raise InputError(f"Training on several processes runs on cuda or cpu, not on {device.type}.")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://")


def process_device(requested: torch.device) -> torch.device:
    """The device of this process in a distributed run: the CPU when asked for, else its own CUDA device."""
    if requested.type == "cpu":
        return requested
    return torch.device("cuda", torch.cuda.current_device())
