"""Supervised fine-tuning from SSP weights: nnU-Net's own schedule by default, so only the starting weights differ.

Use as `nnUNetv2_train D 2d F -tr nnUNetTrainerSSPFinetune -pretrained_weights <ssp checkpoint_final.pth>`.
nnU-Net's loader copies every weight but the output layers; the decoder is then rebuilt, so only the encoder
transfers. Variant tokens (`nnunet_ssp.variants`) set the encoder's rate, freezing, decoder transfer and filter norms.
"""

from typing import List, Sequence

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from torch import distributed as dist
from torch import nn

from nnunet_ssp import labels
from nnunet_ssp.architectures import check_pretrained_architecture, pretrained_weights_argument, unet_class_name
from nnunet_ssp.atomic import atomic_path
from nnunet_ssp.schedules import EpochLRSchedule, warmup_length
from nnunet_ssp.weight_scale import rescale_to_fresh_norm


def bare_network(network: nn.Module) -> nn.Module:
    """The network inside DDP and torch.compile wrappers."""
    network = getattr(network, "module", network)
    return getattr(network, "_orig_mod", network)


def is_decoder_key(key: str) -> bool:
    """Whether a U-Net state-dict key is the decoder's own (not the encoder the decoder refers to)."""
    return key.startswith("decoder.") and not key.startswith("decoder.encoder.")


SILENT_DICE = 0.01  # a structure's validation pseudo-Dice below this at the end of training means it is not predicted


def silent_structures(dice_per_structure: Sequence[float], names: Sequence[str]) -> List[str]:
    """The names of the structures whose validation pseudo-Dice is below SILENT_DICE."""
    return [name for name, dice in zip(names, dice_per_structure) if dice < SILENT_DICE]


class nnUNetTrainerSSPFinetune(nnUNetTrainer):
    """nnU-Net's supervised recipe (peak rate 1e-2, no warm-up, poly decay, SGD momentum 0.99 Nesterov), as the
    reference study fine-tuned, from the pretrained encoder with a fresh decoder (docs/studies/recipe_study.md)."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        network_class_name = unet_class_name(plans, configuration)
        # nnU-Net loads -pretrained_weights outside the trainer, after initialize(), with its own key-by-key check
        pretrained = pretrained_weights_argument()
        if pretrained is not None:
            check_pretrained_architecture(pretrained, network_class_name)
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.initial_lr = 1e-2
        self.warmup_fraction = 0.0
        self.encoder_lr_scale = 1.0
        self.freeze_encoder_fraction = 0.0
        self.reinitialize_decoder = True
        self.fresh_filter_norms = False

    def warmup_epochs(self) -> int:
        """Warm-up length in epochs for this run's `num_epochs`."""
        return warmup_length(self.warmup_fraction, self.num_epochs, at_least=1 if self.warmup_fraction > 0 else 0)

    def frozen_encoder_epochs(self) -> int:
        """Epochs at the start during which the encoder is not updated."""
        return round(self.freeze_encoder_fraction * self.num_epochs)

    def configure_optimizers(self):
        encoder = list(bare_network(self.network).encoder.parameters())
        encoder_ids = {id(p) for p in encoder}
        rest = [p for p in self.network.parameters() if id(p) not in encoder_ids]
        # the rest first: nnU-Net logs and plots the rate of group 0
        groups = [{"params": rest, "lr_scale": 1.0}, {"params": encoder, "lr_scale": self.encoder_lr_scale}]
        optimizer = torch.optim.SGD(groups, self.initial_lr, weight_decay=self.weight_decay, momentum=0.99,
                                    nesterov=True)
        return optimizer, EpochLRSchedule(optimizer, self.initial_lr, self.num_epochs, self.warmup_epochs(), "poly")

    def on_train_start(self) -> None:
        super().on_train_start()
        # a --c resume (epoch > 0) continues from the weights it saved
        if self.current_epoch > 0 or not (self.reinitialize_decoder or self.fresh_filter_norms):
            return
        fresh = self.build_network_architecture(
            self.plans_manager, self.configuration_manager, self.num_input_channels,
            self.label_manager.num_segmentation_heads, self.enable_deep_supervision).to(self.device)
        network = bare_network(self.network)
        if self.reinitialize_decoder:
            state, fresh_state = network.state_dict(), fresh.state_dict()
            network.load_state_dict({key: fresh_state[key] if is_decoder_key(key) else value
                                     for key, value in state.items()})
            self.print_to_log_file("Decoder re-initialised as nnU-Net builds it: only the pretrained encoder is kept.")
        if self.fresh_filter_norms:
            count = rescale_to_fresh_norm(network, fresh)
            self.print_to_log_file(f"Filters of {count} normed convs rescaled to the norms of a fresh initialisation.")
        if self.is_ddp:  # each rank drew its own fresh network
            for tensor in network.state_dict().values():
                dist.broadcast(tensor, src=0)

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        encoder_group = self.optimizer.param_groups[1]
        if self.current_epoch < self.frozen_encoder_epochs():
            # a zero rate freezes the encoder without touching requires_grad, which DDP does not allow
            encoder_group["lr"] = 0.0
            self.print_to_log_file("Encoder frozen in this epoch.")
        elif self.current_epoch == self.frozen_encoder_epochs() > 0:
            for parameter in encoder_group["params"]:
                self.optimizer.state.get(parameter, {}).pop("momentum_buffer", None)  # no jump from frozen epochs

    def structure_names(self) -> List[str]:
        """dataset.json's names of the structures in the order of nnU-Net's per-class pseudo-Dice."""
        names = labels.structure_names(self.dataset_json)
        manager = self.label_manager
        keys = manager.foreground_regions if manager.has_regions else manager.foreground_labels
        return [names[labels.label_key(key)] for key in keys]

    def on_train_end(self) -> None:
        history = self.logger.get_value("dice_per_class_or_region", step=None)
        silent = silent_structures(history[-1], self.structure_names()) if history else []
        if silent:
            # after longer pretraining a structure can come online late, after the end of a short run
            epochs = f"{self.current_epoch} epoch{'' if self.current_epoch == 1 else 's'}"
            self.print_to_log_file(
                f"Warning: the validation pseudo-Dice of {', '.join(silent)} is still about 0 after {epochs}, so the "
                f"model does not segment {'it' if len(silent) == 1 else 'them'} yet: train for more epochs.")
        super().on_train_end()

    def save_checkpoint(self, filename: str) -> None:
        if self.local_rank != 0 or self.disable_checkpointing:
            super().save_checkpoint(filename)
            return
        with atomic_path(filename) as tmp:
            super().save_checkpoint(str(tmp))
