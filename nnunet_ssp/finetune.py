"""Supervised fine-tuning from SSP weights: nnU-Net's training with a lower peak rate, warm-up, then poly decay.

Use as `nnUNetv2_train D 2d F -tr nnUNetTrainerSSPFinetune -pretrained_weights <ssp checkpoint_final.pth>`.
nnU-Net's own loader copies every weight except the output layers; everything else (Dice + CE loss with deep
supervision, augmentation, validation with 3D Dice) is nnU-Net's.
"""

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_ssp.schedules import EpochLRSchedule, warmup_length


class nnUNetTrainerSSPFinetune(nnUNetTrainer):
    """Fine-tuning defaults: peak rate 5e-3 (half of nnU-Net's 1e-2), linear warm-up over 5 % of the epochs
    (at least one), then nnU-Net's poly decay (exponent 0.9) to 0; SGD momentum 0.99 Nesterov as nnU-Net."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.initial_lr = 5e-3
        self.warmup_fraction = 0.05

    def warmup_epochs(self) -> int:
        """Warm-up length in epochs for this run's `num_epochs`."""
        return warmup_length(self.warmup_fraction, self.num_epochs, at_least=1)

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.network.parameters(), self.initial_lr, weight_decay=self.weight_decay,
                                    momentum=0.99, nesterov=True)
        return optimizer, EpochLRSchedule(optimizer, self.initial_lr, self.num_epochs, self.warmup_epochs(), "poly")
