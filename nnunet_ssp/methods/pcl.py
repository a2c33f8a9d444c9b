"""Positional contrastive learning (PCL): slices at similar positions in the stack are positives."""

from typing import Sequence

import torch
from torch import nn

from nnunet_ssp.methods.distributed import gather_with_grad, is_distributed
from nnunet_ssp.methods.precision import in_float32
from nnunet_ssp.methods.simclr import (SimCLR, check_temperature, check_views, partner_views,
                                       view_log_probabilities)

# Position differences within this of the threshold count as ties; float32 rounding of positions in [0, 1] and of
# their difference stays below 1e-6, and no stack has slices that close.
TIE_TOLERANCE = 1e-6


class PositionalContrastiveLoss(nn.Module):
    """Supervised-contrastive loss whose positives are defined by slice position (Zeng et al., MICCAI 2021).

    For 2N views (two per slice) with cosine similarities s_ij, temperature T and normalised slice positions
    q in [0, 1] (base to apex), the positives P(i) of anchor i are the other view of the same slice plus every
    other view whose slice position differs by less than the threshold t (slices of other subjects and other
    frames included):

        loss = 1/(2N) * sum_i -1/|P(i)| * sum_{p in P(i)} log( exp(s_ip / T) / sum_{a != i} exp(s_ia / T) )

    "Less than t" is |q_i - q_j| < t - TIE_TOLERANCE: a pair exactly t apart is a negative whatever float rounding
    does to it (neighbours of a 10-slice stack are 0.1 apart, and in float32 some differences round below 0.1 and
    some above), which is the strict rule PCL and the reference study state. With t = 0 this is exactly
    `NTXentLoss`; with t > 1 every other view is a positive. With
    `gather_distributed=True` views and positions of all ranks are gathered first and every rank returns the same
    global loss; gradients flow only into this rank's embeddings (see `nnunet_ssp.methods.distributed`).

    Args:
        temperature: T > 0.
        threshold: t >= 0; two views are positives when their positions differ by less than t (ties excluded).
        gather_distributed: gather the views of all ranks before computing the loss.
    """

    def __init__(self, temperature: float = 0.1, threshold: float = 0.1, gather_distributed: bool = False) -> None:
        super().__init__()
        check_temperature(temperature)
        if not threshold >= 0:
            raise ValueError(f"threshold must be zero or positive because it bounds a distance, got {threshold}.")
        self.temperature = temperature
        self.threshold = threshold
        self.gather_distributed = gather_distributed

    @in_float32
    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Loss of the views `z_a`, `z_b` (N x D each) of N slices at normalised `positions` (N,) in [0, 1]."""
        check_views(z_a, z_b)
        if positions.shape != (z_a.shape[0],):
            raise ValueError(f"positions must hold one value per slice, shape ({z_a.shape[0]},), "
                             f"got {tuple(positions.shape)}.")
        if positions.min() < 0 or positions.max() > 1:
            raise ValueError("positions must be normalised slice positions in [0, 1].")
        log_prob = view_log_probabilities(z_a, z_b, self.temperature, self.gather_distributed)
        if self.gather_distributed:
            positions = gather_with_grad(positions)
        positives = self._positive_pairs(positions)
        per_anchor = torch.where(positives, log_prob, 0.0).sum(dim=1) / positives.sum(dim=1)
        return -per_anchor.mean()

    def _positive_pairs(self, positions: torch.Tensor) -> torch.Tensor:
        """2M x 2M boolean matrix of positive pairs for the views of M slices (first views, then second views)."""
        view_positions = torch.cat([positions, positions])
        close = (view_positions[:, None] - view_positions[None, :]).abs() < self.threshold - TIE_TOLERANCE
        close[partner_views(view_positions.shape[0], positions.device)] = True
        close.fill_diagonal_(False)
        return close


class PositionalContrastiveLearning(SimCLR):
    """PCL: SimCLR's views, head and optimiser with positives defined by base-to-apex slice position (t 0.1).

    Positions come from the slice table, computed on each original stack (`nnunet_ssp.positions`). Settings against
    the reference study's: docs/studies/protocol_deviations.md.
    """

    name = "pcl"
    weight_decay = 1e-5

    def __init__(self, network: nn.Module, num_input_channels: int, patch_size: Sequence[int], num_epochs: int,
                 temperature: float = 0.1, threshold: float = 0.1, head_widths: Sequence[int] = (512, 512, 512),
                 augmentation: str = "ssp"):
        super().__init__(network, num_input_channels, patch_size, num_epochs, temperature, head_widths, augmentation)
        self.loss = PositionalContrastiveLoss(temperature, threshold, gather_distributed=is_distributed())

    def forward(self, network, views, positions, epoch):
        z_a, z_b = self.embed_pair(network, views)
        return self.loss(z_a, z_b, positions)
