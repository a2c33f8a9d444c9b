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

from nnunet_ssp.methods import get_method

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


SUPERVISED_PASSES = NetworkPasses(lambda t: "1", lambda t, b: [b["data"]], _unet)
# by a method's `timed_passes` in the registry (nnunet_ssp.methods.registry)
TIMED_PASSES: Dict[str, NetworkPasses] = {
    "masked_unet": NetworkPasses(lambda t: "1 (masked)", lambda t, b: [b["views"][0]], _unet),
    "encoder_two_views": NetworkPasses(lambda t: "2", lambda t, b: [torch.cat(b["views"][:2])], _encoder),
    "teacher_and_student": NetworkPasses(_dino_views, _dino_inputs, _teacher_and_student),
}


def network_passes(trainer: nnUNetTrainer) -> NetworkPasses:
    """The bare passes of `trainer`'s step."""
    method = method_of(trainer)
    if method == SUPERVISED:
        return SUPERVISED_PASSES
    timed = get_method(method).timed_passes
    if timed not in TIMED_PASSES:
        raise KeyError(f"no bare network passes {timed!r} are defined (the method {method!r} asks for them)")
    return TIMED_PASSES[timed]
