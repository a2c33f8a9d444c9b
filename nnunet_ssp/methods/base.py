"""What every self-supervised method provides to the shared pretraining trainer."""

from typing import Callable, List, Optional, Sequence, Tuple

import torch
from batchgeneratorsv2.helpers.scalar_type import RandomScalar
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform
from torch import nn

from nnunet_ssp.methods.heads import global_average_pool
from nnunet_ssp.views import ssp_view

ENCODER = "encoder"
DECODER = "decoder"
AUGMENTATIONS = ("nnunet", "ssp")


class SSPMethod(nn.Module):
    """Views, modules trained beside the U-Net (heads, teacher) and loss of one self-supervised method.

    The U-Net is passed into each call and never stored, so `state_dict()` holds only the method's own state
    (heads, teacher, centre), which is what a resume needs beside the U-Net's weights.
    Class attributes give the method's defaults for the trainer: optimiser and schedule (warm-up as a fraction
    of the epochs). `global_loss` says the loss gathers samples across ranks and returns the global loss on each,
    so under DDP the trainer scales it by the world size before backward (DDP averages gradients).
    """

    name: str = ""
    trained_parts: Tuple[str, ...] = (ENCODER,)
    initial_lr: float = 1e-2
    weight_decay: float = 3e-5
    momentum: float = 0.99
    nesterov: bool = True
    lr_decay: str = "cosine"
    warmup_fraction: float = 0.0
    final_lr: float = 0.0
    global_loss: bool = False

    def __init__(self, num_epochs: int, augmentation: Optional[str] = "nnunet"):
        super().__init__()
        if augmentation is not None and augmentation not in AUGMENTATIONS:
            raise ValueError(f"augmentation must be one of {', '.join(AUGMENTATIONS)}, got {augmentation!r}")
        self.num_epochs = num_epochs
        self.augmentation = augmentation

    def view_augmentation(self, patch_size: Sequence[int], rotation: RandomScalar, mirror_axes: Sequence[int],
                          nnunet_transforms: Callable[[Sequence[int]], BasicTransform]) -> BasicTransform:
        """One view's augmentation: nnU-Net's own training transforms, or the same transforms at SSP strength."""
        if self.augmentation == "ssp":
            return ssp_view(patch_size, rotation, mirror_axes)
        return nnunet_transforms(patch_size)

    def view_transforms(self, patch_size: Sequence[int], rotation: RandomScalar, mirror_axes: Sequence[int],
                        nnunet_transforms: Callable[[Sequence[int]], BasicTransform]) -> List[BasicTransform]:
        """One transform per view the loss needs; `nnunet_transforms(size)` is nnU-Net's training augmentation."""
        return [self.view_augmentation(patch_size, rotation, mirror_axes, nnunet_transforms)]

    @classmethod
    def peak_lr(cls, batch_size: int) -> float:
        """Peak learning rate for a global batch of `batch_size` images: `initial_lr`, unless a method scales it."""
        return cls.initial_lr

    def parameter_groups(self, parameters: List[nn.Parameter]) -> List[dict]:
        """The optimiser's parameter groups of the trained `parameters`: one, at the trainer's weight decay."""
        return [{"params": parameters}]

    def trained_parameters(self, network: nn.Module) -> List[nn.Parameter]:
        """The U-Net parameters this method trains (the rest stay frozen at their initial values)."""
        modules = [network.encoder] if self.trained_parts == (ENCODER,) else [network.encoder, network.decoder]
        params = {id(p): p for m in modules for p in m.parameters()}
        return [p for p in params.values() if not _is_output_layer(network, p)]

    def forward(self, network: nn.Module, views: List[torch.Tensor], positions: torch.Tensor,
                epoch: int) -> torch.Tensor:
        """The loss of one batch."""
        raise NotImplementedError

    def embed(self, deepest_features: torch.Tensor) -> torch.Tensor:
        """The embedding whose spread shows collapse, from the deepest encoder features: by default their pool."""
        return global_average_pool(deepest_features)

    def before_optimizer_step(self, epoch: int) -> None:
        """Hook after backward, before the optimiser step (e.g. freezing a layer's gradients)."""

    def after_optimizer_step(self, network: nn.Module, step: int, total_steps: int) -> None:
        """Hook after the optimiser step (e.g. a teacher update); `step` counts from 0 over the whole run."""

    def write_visual(self, network: nn.Module, views: List[torch.Tensor], filename: str) -> bool:
        """Write a picture of what the method does on `views` to `filename`; False if it has none."""
        return False


def deepest_channels(network: nn.Module) -> int:
    """Channels of the U-Net encoder's deepest stage."""
    return int(network.encoder.output_channels[-1])


def _is_output_layer(network: nn.Module, parameter: nn.Parameter) -> bool:
    return any(parameter is p for p in network.decoder.seg_layers.parameters())


class SSPModel(nn.Module):
    """The U-Net and the method's modules as one module, so one DDP wrapper synchronises both."""

    def __init__(self, network: nn.Module, method: SSPMethod):
        super().__init__()
        self.network = network
        self.method = method

    def forward(self, views: List[torch.Tensor], positions: torch.Tensor, epoch: int):
        return self.method(self.network, views, positions, epoch)
