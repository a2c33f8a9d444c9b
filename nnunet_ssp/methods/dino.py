"""DINO: self-distillation of a momentum teacher into a student across image crops."""

import math
from collections.abc import Sequence

import torch
from torch import nn

from nnunet_ssp.methods.distributed import all_reduce_mean, gather_with_grad


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


def cosine_schedule(step: int, base_value: float, final_value: float, total_steps: int, warmup_steps: int = 0,
                    warmup_start: float = 0.0) -> float:
    """Value at `step` of a linear warm-up from `warmup_start` to `base_value`, then a cosine to `final_value`.

    Step 0 gives `warmup_start` (or `base_value` without warm-up), step `warmup_steps` gives `base_value`, step
    `total_steps` and later give `final_value`.
    """
    if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"a schedule needs total_steps >= 1 and 0 <= warmup_steps <= total_steps, "
                         f"got total_steps={total_steps} and warmup_steps={warmup_steps}.")
    if step < 0:
        raise ValueError(f"step counts from 0, got {step}.")
    if step < warmup_steps:
        return warmup_start + (base_value - warmup_start) * step / warmup_steps
    if step >= total_steps:
        return final_value
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return final_value + 0.5 * (base_value - final_value) * (1 + math.cos(math.pi * progress))


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
    for name, teacher_parameter in teacher_parameters.items():
        teacher_parameter.mul_(momentum).add_(student_parameters[name].detach(), alpha=1 - momentum)
    for name, teacher_buffer in teacher_buffers.items():
        teacher_buffer.copy_(student_buffers[name])
