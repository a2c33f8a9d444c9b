"""Per-epoch learning-rate schedules with nnU-Net's `step(epoch)` interface that keep per-group ratios.

nnU-Net's schedulers write one rate into every parameter group. `EpochLRSchedule` runs them (warm-up, poly decay),
or a cosine decay nnU-Net lacks, and gives each group that rate times `group.get("lr_scale", 1.0)`, so an encoder
can run at a fixed fraction of the rest through warm-up and decay (fine-tuning's `encLr0p<D>`).
"""

import math

from nnunetv2.training.lr_scheduler.warmup import Lin_incr_LRScheduler, PolyLRScheduler_offset
from torch.optim import Optimizer


def warmup_length(fraction: float, num_epochs: int, at_least: int = 0) -> int:
    """Warm-up epochs for a run of `num_epochs`: round(fraction * num_epochs), at least `at_least`, < num_epochs."""
    return max(0, min(max(at_least, round(fraction * num_epochs)), num_epochs - 1))


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


class EpochLRSchedule:
    """Linear warm-up, then poly or cosine decay over the remaining epochs; `step(epoch)` sets every group's rate.

    Warm-up and poly decay are nnU-Net's own schedulers (`Lin_incr_LRScheduler`, `PolyLRScheduler_offset`), which
    write one rate into every group; each group then gets that rate times its `lr_scale`.
    """

    def __init__(self, optimizer: Optimizer, peak_lr: float, num_epochs: int, warmup_epochs: int = 0,
                 decay: str = "poly", final_lr: float = 0.0, exponent: float = 0.9):
        if decay not in ("poly", "cosine"):
            raise ValueError(f"decay must be 'poly' or 'cosine', got {decay!r}")
        if not 0 <= warmup_epochs < num_epochs:
            raise ValueError(f"warmup_epochs must lie in [0, num_epochs), got {warmup_epochs} of {num_epochs}")
        self.optimizer = optimizer
        self.peak_lr = peak_lr
        self.num_epochs = num_epochs
        self.warmup_epochs = warmup_epochs
        self.decay = decay
        self.final_lr = final_lr
        self.warmup = Lin_incr_LRScheduler(optimizer, peak_lr, warmup_epochs + 1) if warmup_epochs else None
        self.poly = PolyLRScheduler_offset(optimizer, peak_lr, num_epochs, warmup_epochs, exponent) \
            if decay == "poly" else None

    def step(self, epoch: int) -> None:
        """Set the rates for `epoch`."""
        if epoch < self.warmup_epochs:
            self.warmup.step(epoch)
        elif self.poly is not None:
            self.poly.step(epoch)
        else:
            rate = cosine_schedule(epoch - self.warmup_epochs, self.peak_lr, self.final_lr,
                                   self.num_epochs - self.warmup_epochs)
            for group in self.optimizer.param_groups:
                group["lr"] = rate
        for group in self.optimizer.param_groups:
            group["lr"] *= group.get("lr_scale", 1.0)
