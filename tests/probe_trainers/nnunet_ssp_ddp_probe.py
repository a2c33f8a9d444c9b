"""Pretraining trainers for the distributed tests only (put this folder on nnUNet_extTrainer).

Each `nnUNetTrainerSSPProbe_<METHOD>` is the method's real trainer, seeded per global rank (SSP_PROBE_SEED + rank)
so that two launches with the same ranks give the same run, trained SSP_PROBE_EPOCHS epochs of 2 iterations, and
writing what each rank saw and ended with to `probe_rank<R>.pt` in its output folder.
"""

import os
import random

import numpy as np
import torch
from batchgenerators.utilities.file_and_folder_operations import join
from torch import distributed as dist

from nnunet_ssp.pretrain import nnUNetTrainerSSP_DINO, nnUNetTrainerSSP_MIM, nnUNetTrainerSSP_PCL, nnUNetTrainerSSP_SimCLR


class _Probe:
    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.rank = dist.get_rank() if self.is_ddp else 0
        seed = int(os.environ.get("SSP_PROBE_SEED", "0")) + self.rank
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        self.num_epochs = int(os.environ.get("SSP_PROBE_EPOCHS", "1"))
        self.num_iterations_per_epoch = 2
        self.num_val_iterations_per_epoch = 1
        self.probe = {"rank": self.rank, "world_size": dist.get_world_size() if self.is_ddp else 1,
                      "device": str(self.device), "losses": [], "batch_sizes": []}

    def on_train_start(self):
        super().on_train_start()
        self.probe["start_epoch"] = self.current_epoch
        self.probe["start_network"] = {k: v.detach().cpu().clone() for k, v in self.network.state_dict().items()}

    def train_step(self, batch):
        result = super().train_step(batch)
        self.probe["losses"].append(float(result["loss"]))
        self.probe["batch_sizes"].append(len(batch["positions"]))
        return result

    def on_train_end(self):
        super().on_train_end()
        self.probe["network"] = {k: v.detach().cpu() for k, v in self.network.state_dict().items()}
        self.probe["method"] = self.method.state_dict()
        torch.save(self.probe, join(self.output_folder, f"probe_rank{self.rank}.pt"))


class nnUNetTrainerSSPProbe_MIM(_Probe, nnUNetTrainerSSP_MIM):
    pass


class nnUNetTrainerSSPProbe_SimCLR(_Probe, nnUNetTrainerSSP_SimCLR):
    pass


class nnUNetTrainerSSPProbe_PCL(_Probe, nnUNetTrainerSSP_PCL):
    pass


class nnUNetTrainerSSPProbe_DINO(_Probe, nnUNetTrainerSSP_DINO):
    pass
