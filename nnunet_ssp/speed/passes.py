"""The bare network passes each trainer's step needs: the same forward and backward calls, nothing else.

A step's time over its bare passes shows what heads, losses, masking, the optimiser and EMA updates cost. Each entry
splits into `inputs` (untimed: the tensors the step feeds its networks) and `run` (timed: forward, and backward of the
outputs' sum, which passes a gradient of ones and adds no work worth counting).
"""

from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.helpers import dummy_context
from torch import autocast

SUPERVISED = "supervised"


@dataclass(frozen=True)
class NetworkPasses:
    """What one trainer's step runs through its networks, and how its views are counted."""

    views: Callable[[nnUNetTrainer], str]
    inputs: Callable[[nnUNetTrainer, dict], List[torch.Tensor]]
    run: Callable[[nnUNetTrainer, List[torch.Tensor]], None]


def method_of(trainer: nnUNetTrainer) -> str:
    """The SSP method name of a trainer, or 'supervised' for nnU-Net's own trainers."""
    return getattr(trainer, "method_name", "") or SUPERVISED


def _backward(outputs: Sequence[torch.Tensor]) -> None:
    sum(o.float().sum() for o in outputs).backward()


def _autocast(trainer: nnUNetTrainer):
    return autocast(trainer.device.type, enabled=True) if trainer.device.type == "cuda" else dummy_context()


def _unet(trainer: nnUNetTrainer, inputs: List[torch.Tensor]) -> None:
    with _autocast(trainer):
        output = trainer.network(inputs[0])
        outputs = output if isinstance(output, (list, tuple)) else [output]
    _backward(outputs)


def _encoder(trainer: nnUNetTrainer, inputs: List[torch.Tensor]) -> None:
    with _autocast(trainer):
        deepest = [trainer.network.encoder(x)[-1] for x in inputs]
    _backward(deepest)


def _teacher_and_student(trainer: nnUNetTrainer, inputs: List[torch.Tensor]) -> None:
    with torch.no_grad(), _autocast(trainer):
        trainer.method.teacher_encoder(inputs[0])
    _encoder(trainer, inputs)


def _dino_inputs(trainer: nnUNetTrainer, batch: dict) -> List[torch.Tensor]:
    views = batch["views"]
    return [torch.cat(views[:2]), *([torch.cat(views[2:])] if len(views) > 2 else [])]


def _dino_views(trainer: nnUNetTrainer) -> str:
    half = "x".join(str(p // 2) for p in trainer.configuration_manager.patch_size)
    return f"2 global + {trainer.method.num_local_crops} local ({half})"


PASSES: Dict[str, NetworkPasses] = {
    SUPERVISED: NetworkPasses(lambda t: "1", lambda t, b: [b["data"]], _unet),
    "mim": NetworkPasses(lambda t: "1 (masked)", lambda t, b: [b["views"][0]], _unet),
    "simclr": NetworkPasses(lambda t: "2", lambda t, b: [torch.cat(b["views"][:2])], _encoder),
    "pcl": NetworkPasses(lambda t: "2", lambda t, b: [torch.cat(b["views"][:2])], _encoder),
    "dino": NetworkPasses(_dino_views, _dino_inputs, _teacher_and_student),
}


def network_passes(trainer: nnUNetTrainer) -> NetworkPasses:
    """The bare passes of `trainer`'s step."""
    method = method_of(trainer)
    if method not in PASSES:
        raise KeyError(f"no bare network passes are defined for the method {method!r}")
    return PASSES[method]
