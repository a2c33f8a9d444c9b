"""DINO: self-distillation of a momentum teacher into a student across image crops."""

import copy
from collections.abc import Callable, Sequence
from typing import List, Optional

import torch
from torch import nn

from nnunet_ssp.methods.base import ENCODER, SSPMethod, deepest_channels
from nnunet_ssp.methods.distributed import all_reduce_mean, gather_with_grad, is_distributed
from nnunet_ssp.methods.heads import DINOHead, global_average_pool
from nnunet_ssp.methods.precision import in_float32
from nnunet_ssp.schedules import cosine_schedule
from nnunet_ssp.views import DINO_GLOBAL_ZOOM, DINO_LOCAL_ZOOM, DINO_STRONG_BLUR_SIGMA, ssp_view


class DINOLoss(nn.Module):
    """Cross-entropy between the centred, sharpened teacher and the student over pairs of different crops.

    DINO (Caron et al. 2021). With centre c, teacher temperature T_t(epoch) and student temperature T_s, for
    teacher crops i (the global crops) and student crops j (the same global crops first, then the local crops):

        P_t^i = softmax((g_t^i - c) / T_t),   log P_s^j = log_softmax(g_s^j / T_s)
        loss = mean over samples and over pairs (i, j) with j != i of  -sum_k P_t^i[k] log P_s^j[k]

    T_t rises linearly from `warmup_teacher_temperature` (epoch 0) to `teacher_temperature` (epoch
    `warmup_teacher_epochs - 1`) and stays there. In training mode every forward afterwards updates the centre,
    a buffer saved in the state dict, with c <- m c + (1 - m) mean(teacher outputs of this step), like BatchNorm
    updates its running statistics; in eval mode the centre is left alone.

    With `gather_distributed=True` the mean over samples covers the samples of all ranks, so every rank returns
    the same global loss and gradients flow only into this rank's student outputs (see
    `nnunet_ssp.methods.distributed`), and the centre is updated with the mean over all ranks' teacher outputs,
    so it stays identical on every rank.

    Args:
        out_dim: dimension of the head outputs (number of prototypes).
        student_temperature: T_s > 0.
        teacher_temperature: T_t > 0 after the warm-up.
        warmup_teacher_temperature: T_t > 0 at epoch 0.
        warmup_teacher_epochs: length of the linear warm-up in epochs (0: no warm-up).
        center_momentum: m in [0, 1].
        gather_distributed: average over the samples of all ranks and keep the centre in sync.
    """

    center: torch.Tensor

    def __init__(self, out_dim: int = 8192, student_temperature: float = 0.1, teacher_temperature: float = 0.04,
                 warmup_teacher_temperature: float = 0.02, warmup_teacher_epochs: int = 30,
                 center_momentum: float = 0.9, gather_distributed: bool = False) -> None:
        super().__init__()
        if out_dim < 1:
            raise ValueError(f"out_dim must be positive, got {out_dim}.")
        for name, value in [("student_temperature", student_temperature),
                            ("teacher_temperature", teacher_temperature),
                            ("warmup_teacher_temperature", warmup_teacher_temperature)]:
            if not value > 0:
                raise ValueError(f"{name} must be positive because the outputs are divided by it, got {value}.")
        if warmup_teacher_epochs < 0:
            raise ValueError(f"warmup_teacher_epochs must be zero or positive, got {warmup_teacher_epochs}.")
        if not 0 <= center_momentum <= 1:
            raise ValueError(f"center_momentum must lie in [0, 1], got {center_momentum}.")
        self.out_dim = out_dim
        self.student_temperature = student_temperature
        self.teacher_temperature = teacher_temperature
        self.warmup_teacher_temperature = warmup_teacher_temperature
        self.warmup_teacher_epochs = warmup_teacher_epochs
        self.center_momentum = center_momentum
        self.gather_distributed = gather_distributed
        self.register_buffer("center", torch.zeros(1, out_dim))

    def teacher_temperature_at(self, epoch: int) -> float:
        """Teacher temperature used in `epoch` (counted from 0)."""
        if epoch >= self.warmup_teacher_epochs:
            return self.teacher_temperature
        if self.warmup_teacher_epochs == 1:
            return self.warmup_teacher_temperature
        fraction = epoch / (self.warmup_teacher_epochs - 1)
        return self.warmup_teacher_temperature + fraction * (self.teacher_temperature - self.warmup_teacher_temperature)

    @in_float32
    def forward(self, teacher_out: Sequence[torch.Tensor], student_out: Sequence[torch.Tensor],
                epoch: int) -> torch.Tensor:
        """Loss of the teacher's global crops against the student's crops (each N x out_dim) in `epoch`."""
        self._check_outputs(teacher_out, student_out, epoch)
        teacher = torch.stack([t.detach() for t in teacher_out])
        teacher_probs = torch.softmax((teacher - self.center) / self.teacher_temperature_at(epoch), dim=-1)
        student_log_probs = torch.log_softmax(torch.stack(list(student_out)) / self.student_temperature, dim=-1)
        # cross_entropy[i, j, b]: teacher crop i against student crop j for sample b.
        cross_entropy = -torch.einsum("ibk,jbk->ijb", teacher_probs, student_log_probs)
        n_teacher, n_student = len(teacher_out), len(student_out)
        different_crops = ~torch.eye(n_teacher, n_student, dtype=torch.bool, device=cross_entropy.device)
        per_sample = cross_entropy[different_crops].mean(dim=0)
        if self.gather_distributed:
            per_sample = gather_with_grad(per_sample)
        if self.training:
            self._update_center(teacher)
        return per_sample.mean()

    @torch.no_grad()
    def _update_center(self, teacher: torch.Tensor) -> None:
        """Move the centre towards the mean teacher output of this step (over all ranks when gathering)."""
        flat = teacher.reshape(-1, self.out_dim)
        sum_and_count = torch.cat([flat.sum(dim=0), flat.new_tensor([flat.shape[0]])])
        if self.gather_distributed:
            # The world size cancels in the ratio, so means of sums give the exact mean over unequal batches.
            sum_and_count = all_reduce_mean(sum_and_count)
        batch_center = sum_and_count[:-1] / sum_and_count[-1]
        self.center.mul_(self.center_momentum).add_(batch_center.to(self.center.dtype), alpha=1 - self.center_momentum)

    def _check_outputs(self, teacher_out: Sequence[torch.Tensor], student_out: Sequence[torch.Tensor],
                       epoch: int) -> None:
        """Refuse crop lists that do not pair up or do not match `out_dim`, and negative epochs."""
        if len(teacher_out) == 0 or len(student_out) < len(teacher_out) or len(student_out) < 2:
            raise ValueError(f"DINO needs at least one teacher crop and at least as many student crops (at least two), "
                             f"got {len(teacher_out)} teacher and {len(student_out)} student crops.")
        shape = tuple(teacher_out[0].shape)
        if len(shape) != 2 or shape[1] != self.out_dim or any(tuple(o.shape) != shape
                                                              for o in [*teacher_out, *student_out]):
            raise ValueError(f"every crop output must have shape N x {self.out_dim}, got "
                             f"{[tuple(o.shape) for o in [*teacher_out, *student_out]]}.")
        if epoch < 0:
            raise ValueError(f"epoch counts from 0, got {epoch}.")


@torch.no_grad()
def update_teacher(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """Set teacher parameters to momentum * teacher + (1 - momentum) * student and copy the student's buffers.

    Pass the bare student, not its DDP wrapper. DDP keeps the student identical on every rank, and this update is
    element-wise and deterministic, so the teacher stays identical on every rank too.
    """
    if not 0 <= momentum <= 1:
        raise ValueError(f"teacher momentum must lie in [0, 1], got {momentum}.")
    teacher_parameters, student_parameters = dict(teacher.named_parameters()), dict(student.named_parameters())
    teacher_buffers, student_buffers = dict(teacher.named_buffers()), dict(student.named_buffers())
    if teacher_parameters.keys() != student_parameters.keys() or teacher_buffers.keys() != student_buffers.keys():
        raise ValueError("teacher and student must be the same architecture (their parameter and buffer names differ).")
    # batched: on the GPU a few kernel launches instead of two per parameter; same arithmetic as mul_, add_
    teacher_list = list(teacher_parameters.values())
    torch._foreach_mul_(teacher_list, momentum)
    torch._foreach_add_(teacher_list, [student_parameters[name].detach() for name in teacher_parameters],
                        alpha=1 - momentum)
    for name, teacher_buffer in teacher_buffers.items():
        teacher_buffer.copy_(student_buffers[name])


TEACHER_INITS = ("own", "copy")


def own_initialisation(module: nn.Module, initialise: Optional[Callable[[nn.Module], None]]) -> nn.Module:
    """A copy of `module` whose parameters are drawn afresh: each layer's reset, then `initialise` (e.g. nnU-Net's)."""
    fresh = copy.deepcopy(module)
    for layer in fresh.modules():
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()
    if initialise is not None:
        fresh.apply(initialise)
    return fresh


class DINO(SSPMethod):
    """DINO with a CNN encoder: an EMA teacher on two global crops distils into the student on all crops.

    As the reference study ran it (crops, head once over all crops, teacher's own initialisation, optimiser); the
    student encoder is what transfers. Settings against the study's: docs/studies/protocol_deviations.md.
    """

    name = "dino"
    trained_parts = (ENCODER,)
    initial_lr = 0.03  # at a batch of 256 images, scaled linearly with the batch (`peak_lr`)
    weight_decay = 1e-4
    momentum = 0.9
    nesterov = False
    lr_decay = "cosine"
    warmup_fraction = 0.1
    final_lr = 1e-6
    global_loss = True

    def __init__(self, network: nn.Module, num_input_channels: int, patch_size: Sequence[int], num_epochs: int,
                 out_dim: int = 8192, num_local_crops: int = 6, teacher_momentum: float = 0.996,
                 freeze_last_layer_epochs: int = 1, warmup_teacher_fraction: float = 0.3, teacher_init: str = "own"):
        super().__init__(num_epochs, augmentation=None)  # DINO builds its own crops
        if teacher_init not in TEACHER_INITS:
            raise ValueError(f"teacher_init must be one of {', '.join(TEACHER_INITS)}, got {teacher_init!r}")
        self.num_local_crops = num_local_crops
        self.teacher_momentum = teacher_momentum
        self.freeze_last_layer_epochs = freeze_last_layer_epochs
        self.head = DINOHead(deepest_channels(network), out_dim=out_dim)
        if teacher_init == "copy":
            self.teacher_encoder, self.teacher_head = copy.deepcopy(network.encoder), copy.deepcopy(self.head)
        else:
            self.teacher_encoder = own_initialisation(network.encoder, getattr(network, "initialize", None))
            self.teacher_head = DINOHead(deepest_channels(network), out_dim=out_dim)
        self.teacher_encoder.requires_grad_(False)
        self.teacher_head.requires_grad_(False)
        self.loss = DINOLoss(out_dim, warmup_teacher_epochs=round(warmup_teacher_fraction * num_epochs),
                             gather_distributed=is_distributed())

    @classmethod
    def peak_lr(cls, batch_size: int) -> float:
        """The study's linear scaling rule: `initial_lr` * batch / 256."""
        return cls.initial_lr * batch_size / 256

    def parameter_groups(self, parameters: List[nn.Parameter]) -> List[dict]:
        """Weight decay on weight matrices and filters only; biases and norm parameters (1-D) in a group without."""
        return [{"params": [p for p in parameters if p.ndim > 1]},
                {"params": [p for p in parameters if p.ndim <= 1], "weight_decay": 0.0}]

    def view_transforms(self, patch_size, rotation, mirror_axes, nnunet_transforms):
        local = ssp_view([p // 2 for p in patch_size], rotation, mirror_axes, DINO_LOCAL_ZOOM, p_blur=0.1)
        return [ssp_view(patch_size, rotation, mirror_axes, DINO_GLOBAL_ZOOM, p_blur=1.0,
                         blur_sigma=DINO_STRONG_BLUR_SIGMA),
                ssp_view(patch_size, rotation, mirror_axes, DINO_GLOBAL_ZOOM, p_blur=0.1, p_solarise=0.2),
                *[local] * self.num_local_crops]

    def forward(self, network, views, positions, epoch):
        global_crops = torch.cat(views[:2])
        with torch.no_grad():
            teacher = self.teacher_head(self.teacher_encoder(global_crops)[-1]).chunk(2)
        pooled = [global_average_pool(network.encoder(global_crops)[-1])]
        if len(views) > 2:
            pooled.append(global_average_pool(network.encoder(torch.cat(views[2:]))[-1]))
        student = self.head.project(torch.cat(pooled)).chunk(len(views))
        return self.loss(teacher, student, epoch)

    def embed(self, deepest_features: torch.Tensor) -> torch.Tensor:
        """The student head's bottleneck (before the prototypes), where DINO's collapse shows."""
        return self.head.mlp(global_average_pool(deepest_features))

    def before_optimizer_step(self, epoch: int) -> None:
        if epoch < self.freeze_last_layer_epochs:
            self.head.cancel_last_layer_gradients()

    def after_optimizer_step(self, network: nn.Module, step: int, total_steps: int) -> None:
        momentum = cosine_schedule(step, self.teacher_momentum, 1.0, total_steps)
        update_teacher(self.teacher_encoder, network.encoder, momentum)
        update_teacher(self.teacher_head, self.head, momentum)
