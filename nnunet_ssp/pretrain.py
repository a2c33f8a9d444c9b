"""The shared nnU-Net plumbing of self-supervised pretraining, and the thin trainer class of each registered method.

`nnUNetTrainerSSP` trains the plans-built U-Net with a method's views, heads and loss (`nnunet_ssp.methods`) inside
nnU-Net's loop, augmentation, logging and checkpoints. What differs, and why: batches are 2D slices of the training
cases and the unlabeled pool (labels unused); the SSP score, -(validation loss), fills the pseudo-Dice slot, the only
one nnU-Net's logger takes; checkpoints carry an `ssp` record and load with `weights_only=True`; `ssp_summary.json`
replaces segmentation validation; no `torch.compile`, as the method's hooks and heads run around the U-Net.
"""

import time
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
from batchgenerators.dataloading.nondet_multi_threaded_augmenter import NonDetMultiThreadedAugmenter
from batchgenerators.dataloading.single_threaded_augmenter import SingleThreadedAugmenter
from batchgenerators.utilities.file_and_folder_operations import join, maybe_mkdir_p
from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.collate_outputs import collate_outputs
from nnunetv2.utilities.default_n_proc_DA import get_allowed_n_proc_DA
from nnunetv2.utilities.helpers import dummy_context
from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
from torch import autocast, nn
from torch import distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from nnunet_ssp import __version__
from nnunet_ssp.architectures import unet_class_name
from nnunet_ssp.atomic import write_json
from nnunet_ssp.checkpoint import SSP_RECORD_VERSION, load_checkpoint, save_checkpoint, without_numpy
from nnunet_ssp.errors import InputError
from nnunet_ssp.methods import METHODS, Method, get_method_class, method_of_trainer
from nnunet_ssp.methods.base import SSPModel
from nnunet_ssp.methods.heads import global_average_pool
from nnunet_ssp.methods.probes import encoder_probes
from nnunet_ssp.process_group import join_torchrun_group, process_device
from nnunet_ssp.roots import preprocessed_configuration_folder
from nnunet_ssp.schedules import EpochLRSchedule, warmup_length
from nnunet_ssp.slice_loader import patch_loader
from nnunet_ssp.slices import SliceTable, labeled_case_slices
from nnunet_ssp.spelling import respelled
from nnunet_ssp.ssp_progress import plot_ssp_progress
from nnunet_ssp.subjects import dataset_subject_rule
from nnunet_ssp.unlabeled import MANIFEST_FILE, pool_flips_base_apex, pool_folder, unlabeled_pool_slices


class nnUNetTrainerSSP(nnUNetTrainer):
    """Self-supervised pretraining of the plans-built U-Net with the method named by `method_name`."""

    method_name = ""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        # before nnU-Net's constructor starts a log in the output folder
        unet_class_name(plans, configuration)
        preprocessed_configuration_folder(plans["dataset_name"], plans["plans_name"], configuration)
        join_torchrun_group(device)
        super().__init__(plans, configuration, fold, dataset_json, device)
        self._use_process_device(device)
        self.method_class = get_method_class(self.method_name)
        self.method_kwargs: dict = {}
        self.enable_deep_supervision = False
        self.oversample_foreground_percent = 0.0
        self.initial_lr = self.method_class.peak_lr(self.configuration_manager.batch_size)
        self.weight_decay = self.method_class.weight_decay
        self.momentum = self.method_class.momentum
        self.nesterov = self.method_class.nesterov
        self.lr_decay = self.method_class.lr_decay
        self.warmup_fraction = self.method_class.warmup_fraction
        self.final_lr = self.method_class.final_lr
        self.visual_every = 50
        self.ssp_data = "both"
        self.method = None
        self.training_model = None
        self.train_slices = self.val_slices = None
        self.ssp_history: Dict[str, List[float]] = {}
        self._step_in_epoch = 0
        self._visual_views = None
        self._probe_batches: List[Tuple[torch.Tensor, torch.Tensor, torch.Tensor, List[str]]] = []

    def _use_process_device(self, requested: torch.device) -> None:
        """In a distributed run, train on this process's own device (nnU-Net assumes cuda:<global rank>)."""
        if self.is_ddp:
            self.device = process_device(requested)
            if self.device.type != "cuda":
                self.grad_scaler = None

    def initialize(self) -> None:
        if self.was_initialized:
            raise RuntimeError("initialize() was called twice on the same trainer.")
        self._set_batch_size_and_oversample()
        self.num_input_channels = determine_num_input_channels(self.plans_manager, self.configuration_manager,
                                                               self.dataset_json)
        self.network = self.build_network_architecture(
            self.plans_manager, self.configuration_manager, self.num_input_channels,
            self.label_manager.num_segmentation_heads, False).to(self.device)
        self.method = self.method_class(self.network, self.num_input_channels, self.configuration_manager.patch_size,
                                        self.num_epochs, **self.method_kwargs).to(self.device)
        trained = {id(p) for p in self.method.trained_parameters(self.network)}
        for p in self.network.parameters():
            p.requires_grad_(id(p) in trained)
        self.training_model = SSPModel(self.network, self.method)
        self.optimizer, self.lr_scheduler = self.configure_optimizers()
        if self.is_ddp and self.device.type == "cuda":
            self.training_model = DDP(nn.SyncBatchNorm.convert_sync_batchnorm(self.training_model),
                                      device_ids=[self.device.index])
        elif self.is_ddp:  # torch synchronises batch norm on accelerators only
            self.training_model = DDP(self.training_model)
        self.dataset_class = infer_dataset_class(self.preprocessed_dataset_folder)
        self.was_initialized = True
        self.logger.update_config({"hparas": self.hyperparameters()})

    def hyperparameters(self) -> dict:
        """The settings of this run, as recorded in the checkpoint and the summary."""
        return {
            "method_kwargs": dict(self.method_kwargs), "initial_lr": self.initial_lr,
            "weight_decay": self.weight_decay, "momentum": self.momentum, "nesterov": self.nesterov,
            "lr_decay": self.lr_decay, "warmup_epochs": self.warmup_epochs(), "final_lr": self.final_lr,
            "num_epochs": self.num_epochs, "num_iterations_per_epoch": self.num_iterations_per_epoch,
            "num_val_iterations_per_epoch": self.num_val_iterations_per_epoch,
            "batch_size": self.configuration_manager.batch_size, "ssp_data": self.ssp_data,
            "batch_size_per_process": getattr(self, "batch_size", self.configuration_manager.batch_size),
            "processes": dist.get_world_size() if self.is_ddp else 1,
        }

    def warmup_epochs(self) -> int:
        """Warm-up length in epochs: the method's fraction of `num_epochs`, at most `num_epochs - 1`."""
        return warmup_length(self.warmup_fraction, self.num_epochs)

    def configure_optimizers(self):
        params = [p for p in self.training_model.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(self.method.parameter_groups(params), self.initial_lr,
                                    weight_decay=self.weight_decay, momentum=self.momentum, nesterov=self.nesterov)
        schedule = EpochLRSchedule(optimizer, self.initial_lr, self.num_epochs, self.warmup_epochs(), self.lr_decay,
                                   self.final_lr)
        return optimizer, schedule

    def set_deep_supervision_enabled(self, enabled: bool) -> None:
        self.network.decoder.deep_supervision = enabled

    def get_slice_tables(self) -> Tuple[SliceTable, SliceTable]:
        """Training slices (the split's training cases and/or the unlabeled pool) and validation slices."""
        self.ssp_data = respelled(self.ssp_data)  # a trainer that sets the older spelling still runs
        if self.ssp_data not in ("both", "labeled", "pool"):
            raise ValueError(f"ssp_data must be 'both', 'labeled' or 'pool', got {self.ssp_data!r}")
        tr_keys, val_keys = self.do_split()
        transpose = self.plans_manager.transpose_forward
        pool = pool_folder(self.preprocessed_dataset_folder_base, self.configuration_manager.data_identifier)
        flip = pool_flips_base_apex(pool)
        rule = dataset_subject_rule(self.preprocessed_dataset_folder_base).subject_and_frame
        labeled = labeled_case_slices(self.preprocessed_dataset_folder, tr_keys, transpose, flip, rule)
        val = labeled_case_slices(self.preprocessed_dataset_folder, val_keys, transpose, flip, rule)
        train = labeled if self.ssp_data != "pool" else SliceTable()
        if self.ssp_data != "labeled" and (pool / MANIFEST_FILE).is_file():
            held_out = set(val.subject) - set(labeled.subject)
            train.extend(unlabeled_pool_slices(self.preprocessed_dataset_folder_base,
                                               self.configuration_manager.data_identifier, held_out, train,
                                               self.print_to_log_file))
        elif self.ssp_data == "pool":
            raise InputError(f"{pool / MANIFEST_FILE} is missing: this trainer pretrains on the unlabeled pool "
                             f"only; prepare it with `nnunet-ssp prepare-unlabeled`.")
        elif self.ssp_data == "both":
            self.print_to_log_file(f"No unlabeled pool in {pool}: pretraining on the labeled training cases only.")
        if len(train) == 0:
            raise InputError(f"{pool / MANIFEST_FILE if self.ssp_data == 'pool' else self.preprocessed_dataset_folder} "
                             f"holds no slice of a training subject to pretrain on.")
        return train, val

    def get_dataloaders(self):
        patch_size = self.configuration_manager.patch_size
        rotation, dummy_2d, crop_size, mirror_axes = self.configure_rotation_dummyDA_mirroring_and_inital_patch_size()

        def nnunet_transforms(size: Sequence[int]):
            return self.get_training_transforms(size, rotation, None, mirror_axes, dummy_2d)

        views = self.method.view_transforms(patch_size, rotation, mirror_axes, nnunet_transforms)
        self.train_slices, self.val_slices = self.get_slice_tables()
        loaders = [patch_loader(table, self.batch_size, crop_size, patch_size, self.label_manager, views)
                   for table in (self.train_slices, self.val_slices)]
        processes = get_allowed_n_proc_DA()
        if processes == 0:
            return tuple(SingleThreadedAugmenter(dl, None) for dl in loaders)
        pin = self.device.type == "cuda"
        return (NonDetMultiThreadedAugmenter(loaders[0], None, processes, max(6, processes // 2), None, pin, 0.002),
                NonDetMultiThreadedAugmenter(loaders[1], None, max(1, processes // 2), max(3, processes // 4), None,
                                             pin, 0.002))

    def on_train_start(self) -> None:
        super().on_train_start()
        self.print_to_log_file(
            f"SSP pretraining with {self.method_class.__name__} on {len(self.train_slices)} training slices of "
            f"{len(set(self.train_slices.subject))} subjects ({len(self.val_slices)} validation slices). nnU-Net's "
            "'pseudo dice' below is the SSP score = -(validation loss): higher is better.")

    def _autocast(self):
        return autocast(self.device.type, enabled=True) if self.device.type == "cuda" else dummy_context()

    def _batch_to_device(self, batch: dict) -> Tuple[List[torch.Tensor], torch.Tensor]:
        views = [v.to(self.device, non_blocking=True) for v in batch["views"]]
        return views, batch["positions"].to(self.device, non_blocking=True)

    def on_train_epoch_start(self) -> None:
        super().on_train_epoch_start()
        self.training_model.train()
        self._step_in_epoch = 0

    def train_step(self, batch: dict) -> dict:
        views, positions = self._batch_to_device(batch)
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            loss = self.training_model(views, positions, self.current_epoch)
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        # a global loss is the same on every rank; DDP averages gradients, so scale back to the global gradient
        objective = loss * dist.get_world_size() if self.is_ddp and self.method.global_loss else loss
        if self.grad_scaler is not None:
            self.grad_scaler.scale(objective).backward()
            self.grad_scaler.unscale_(self.optimizer)
        else:
            objective.backward()
        self.method.before_optimizer_step(self.current_epoch)
        torch.nn.utils.clip_grad_norm_(params, 12)
        if self.grad_scaler is not None:
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            self.optimizer.step()
        step = self.current_epoch * self.num_iterations_per_epoch + self._step_in_epoch
        self.method.after_optimizer_step(self.network, step, self.num_epochs * self.num_iterations_per_epoch)
        self._step_in_epoch += 1
        return {"loss": loss.detach().cpu().numpy()}

    def on_validation_epoch_start(self) -> None:
        self.training_model.eval()
        self._visual_views = None
        self._probe_batches = []

    def validation_step(self, batch: dict) -> dict:
        views, positions = self._batch_to_device(batch)
        if self._visual_views is None:
            self._visual_views = views
        with self._autocast():
            loss = self.training_model(views, positions, self.current_epoch)
            deepest = self.network.encoder(views[0])[-1]
        self._probe_batches.append((self.method.embed(deepest).float().cpu(), global_average_pool(deepest).float().cpu(),
                                    batch["positions"], batch["subjects"]))
        return {"loss": loss.detach().cpu().numpy()}

    def on_validation_epoch_end(self, val_outputs: List[dict]) -> None:
        loss = float(np.mean(collate_outputs(val_outputs)["loss"]))
        if self.is_ddp:
            losses = [None] * dist.get_world_size()
            dist.all_gather_object(losses, loss)
            loss = float(np.mean(losses))
        self.logger.log("val_losses", loss, self.current_epoch)
        self.logger.log("mean_fg_dice", -loss, self.current_epoch)
        self.logger.log("dice_per_class_or_region", [-loss], self.current_epoch)
        method_z, encoder_z, positions, subjects = zip(*self._probe_batches)
        probes = encoder_probes(torch.cat(method_z), torch.cat(encoder_z), torch.cat(positions),
                                [s for b in subjects for s in b])
        for key, value in probes.items():
            self.ssp_history.setdefault(f"val_{key}", []).append(value)
            self.print_to_log_file(f"val {key}: {np.round(value, 4)}")

    def on_epoch_end(self) -> None:
        last = self.current_epoch == self.num_epochs - 1
        if self.local_rank == 0 and self._visual_views is not None and (
                self.current_epoch % self.visual_every == 0 or last):
            self.method.write_visual(self.network, self._visual_views,
                                     join(self.output_folder, "ssp_visuals", f"epoch_{self.current_epoch:04d}.png"))
        super().on_epoch_end()
        if self.local_rank == 0:
            log = self.logger.get_checkpoint()
            plot_ssp_progress(log["train_losses"], log["val_losses"], self.ssp_history,
                              join(self.output_folder, "ssp_progress.png"))

    def ssp_record(self) -> dict:
        """The `ssp` entry of a checkpoint: what was trained, on what, how, and the method's resume state."""
        cm = self.configuration_manager
        table = self.train_slices
        return {
            "version": SSP_RECORD_VERSION,
            "package_version": __version__,
            "method": self.method_class.name,
            "trainer": self.__class__.__name__,
            "trained_parts": list(self.method_class.trained_parts),
            "architecture": {"network_class_name": cm.network_arch_class_name,
                             "arch_kwargs": without_numpy(cm.network_arch_init_kwargs),
                             "arch_kwargs_requires_import": list(cm.network_arch_init_kwargs_req_import)},
            "dataset_name": self.plans_manager.dataset_name,
            "plans_name": self.plans_manager.plans_name,
            "configuration": self.configuration_name,
            "patch_size": list(cm.patch_size),
            "spacing": list(cm.spacing),
            "normalization_schemes": list(cm.normalization_schemes),
            "transpose_forward": list(self.plans_manager.transpose_forward),
            "num_input_channels": int(self.num_input_channels),
            "data": {"sources": list(table.folders) if table else [], "num_slices": len(table) if table else 0,
                     "subjects": table.subjects() if table else []},
            "hyperparameters": without_numpy(self.hyperparameters()),
            "resume": {"method_state": self.method.state_dict(), "history": self.ssp_history},
        }

    def save_checkpoint(self, filename: str) -> None:
        if self.local_rank != 0:
            return
        if self.disable_checkpointing:
            self.print_to_log_file("No checkpoint written, checkpointing is disabled")
            return
        checkpoint = {
            "network_weights": self.network.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "grad_scaler_state": self.grad_scaler.state_dict() if self.grad_scaler is not None else None,
            "logging": without_numpy(self.logger.get_checkpoint()),
            "_best_ema": without_numpy(self._best_ema),
            "current_epoch": self.current_epoch + 1,
            "init_args": without_numpy(self.my_init_kwargs),
            "trainer_name": self.__class__.__name__,
            "inference_allowed_mirroring_axes": without_numpy(self.inference_allowed_mirroring_axes),
            "ssp": self.ssp_record(),
        }
        save_checkpoint(checkpoint, filename)

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        if not self.was_initialized:
            self.initialize()
        name = filename_or_checkpoint if isinstance(filename_or_checkpoint, str) else "the checkpoint"
        checkpoint = load_checkpoint(filename_or_checkpoint, self.device) \
            if isinstance(filename_or_checkpoint, str) else filename_or_checkpoint
        ssp = checkpoint.get("ssp")
        if ssp is None or ssp.get("method") != self.method_class.name:
            found = ssp.get("method") if ssp else "no SSP record"
            raise InputError(f"{name} cannot resume {self.__class__.__name__}: it holds {found}, "
                             f"not a {self.method_class.name} pretraining.")
        self.network.load_state_dict(checkpoint["network_weights"])
        self.method.load_state_dict(ssp["resume"]["method_state"])
        self.optimizer.load_state_dict(checkpoint["optimizer_state"])
        if self.grad_scaler is not None and checkpoint["grad_scaler_state"] is not None:
            self.grad_scaler.load_state_dict(checkpoint["grad_scaler_state"])
        self.my_init_kwargs = checkpoint["init_args"]
        self.current_epoch = checkpoint["current_epoch"]
        self.logger.load_checkpoint(checkpoint["logging"])
        self._best_ema = checkpoint["_best_ema"]
        self.inference_allowed_mirroring_axes = checkpoint["inference_allowed_mirroring_axes"]
        self.ssp_history = {k: list(v) for k, v in ssp["resume"]["history"].items()}

    def perform_actual_validation(self, save_probabilities: bool = False) -> None:
        """Write `ssp_summary.json` (SSP has no segmentation to validate)."""
        if self.local_rank != 0:
            return
        log = self.logger.get_checkpoint()
        val = log["val_losses"]
        durations = np.subtract(log["epoch_end_timestamps"], log["epoch_start_timestamps"][:len(val)])
        images = self.num_iterations_per_epoch * self.configuration_manager.batch_size
        summary = {
            "method": self.method_class.name,
            "trainer": self.__class__.__name__,
            "epochs": len(val),
            "final_train_loss": float(log["train_losses"][-1]) if val else None,
            "final_val_loss": float(val[-1]) if val else None,
            "best_val_loss": float(np.min(val)) if val else None,
            "best_epoch": int(np.argmin(val)) if val else None,
            "seconds_per_epoch": float(np.mean(durations)) if val else None,
            "training_images_per_epoch_second": float(images / np.mean(durations)) if val else None,
            "history": self.ssp_history,
            "checkpoint": join(self.output_folder, "checkpoint_final.pth"),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        maybe_mkdir_p(self.output_folder)
        write_json(summary, join(self.output_folder, "ssp_summary.json"))
        self.print_to_log_file(f"SSP pretraining done: final validation loss {summary['final_val_loss']}, "
                               f"summary in {join(self.output_folder, 'ssp_summary.json')}")


def pretraining_trainer_class(method: Method) -> type:
    """The pretraining trainer of a registered method, made once and kept in this module (so it pickles)."""
    cls = globals().get(method.trainer)
    if cls is None:
        cls = type(method.trainer, (nnUNetTrainerSSP,), {
            "method_name": method.name, "__module__": __name__, "__qualname__": method.trainer,
            "__doc__": f"Self-supervised pretraining with {method.method_class.replace(':', '.')}."})
        globals()[method.trainer] = cls
    return cls


for _method in METHODS.values():
    pretraining_trainer_class(_method)


def __getattr__(name: str) -> type:
    method = method_of_trainer(name)  # registered after this module was imported
    if method is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return pretraining_trainer_class(method)
