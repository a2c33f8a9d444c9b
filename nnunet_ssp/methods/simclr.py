"""SimCLR: two augmented views of each slice, a projection head, and the NT-Xent contrastive loss between them."""

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from nnunet_ssp.methods.base import ENCODER, SSPMethod, deepest_channels
from nnunet_ssp.methods.distributed import gather_with_grad, is_distributed
from nnunet_ssp.methods.heads import ProjectionHead
from nnunet_ssp.methods.precision import in_float32


def check_temperature(temperature: float) -> None:
    """Refuse a temperature that is not positive (the logits are divided by it)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive because the similarities are divided by it, got {temperature}.")


def check_views(z_a: torch.Tensor, z_b: torch.Tensor) -> None:
    """Refuse two view embeddings that are not matching N x D matrices with at least one sample."""
    if z_a.ndim != 2 or z_a.shape != z_b.shape or z_a.shape[0] == 0:
        raise ValueError(f"the two views must be non-empty N x D embeddings of the same shape, "
                         f"got {tuple(z_a.shape)} and {tuple(z_b.shape)}.")


def view_log_probabilities(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float,
                           gather_distributed: bool) -> torch.Tensor:
    """2M x 2M matrix of log(exp(s_ij / T) / sum_{a != i} exp(s_ia / T)) over the views of all M images.

    Rows and columns list the first views of all images, then the second views (gathered over ranks when asked),
    so view i and view i + M come from the same image; s is the cosine similarity. The diagonal is -inf.
    """
    if gather_distributed:
        # One collective for both views: they are stacked along the feature dimension and split again.
        z_a, z_b = gather_with_grad(torch.cat([z_a, z_b], dim=1)).chunk(2, dim=1)
    z = F.normalize(torch.cat([z_a, z_b]), dim=1)
    logits = z @ z.T / temperature
    self_pairs = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)
    return torch.log_softmax(logits.masked_fill(self_pairs, float("-inf")), dim=1)


def partner_views(n_views: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (i, p(i)) pairing each of `n_views` views with the other view of the same image."""
    anchors = torch.arange(n_views, device=device)
    return anchors, (anchors + n_views // 2) % n_views


class NTXentLoss(nn.Module):
    """Normalised temperature-scaled cross-entropy (SimCLR, Chen et al. 2020).

    For 2N views (two per image) with cosine similarities s_ij and temperature T, anchor i's positive p(i) is the
    other view of the same image and every other view is a negative:

        loss = 1/(2N) * sum_i -log( exp(s_{i,p(i)} / T) / sum_{a != i} exp(s_ia / T) )

    With `gather_distributed=True` the views of all ranks are gathered first, so negatives come from the whole
    global batch and every rank returns the same global loss; gradients flow only into this rank's embeddings
    (see `nnunet_ssp.methods.distributed`: under DDP the parameter gradient is the single-process one divided by
    the world size).

    Args:
        temperature: T > 0.
        gather_distributed: gather the views of all ranks before computing the loss.
    """

    def __init__(self, temperature: float = 0.1, gather_distributed: bool = False) -> None:
        super().__init__()
        check_temperature(temperature)
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    @in_float32
    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        """Loss of the first views `z_a` (N x D) against the second views `z_b` (N x D) of the same N images."""
        check_views(z_a, z_b)
        log_prob = view_log_probabilities(z_a, z_b, self.temperature, self.gather_distributed)
        return -log_prob[partner_views(log_prob.shape[0], log_prob.device)].mean()


class SimCLR(SSPMethod):
    """SimCLR: two SSP-strength views of each slice, a projection MLP on the pooled deepest encoder stage, NT-Xent.

    The encoder is what transfers. Settings against the reference study's: docs/studies/protocol_deviations.md.
    """

    name = "simclr"
    trained_parts = (ENCODER,)
    initial_lr = 0.01
    weight_decay = 1e-4
    momentum = 0.9
    nesterov = False
    lr_decay = "cosine"
    global_loss = True

    def __init__(self, network: nn.Module, num_input_channels: int, patch_size: Sequence[int], num_epochs: int,
                 temperature: float = 0.1, head_widths: Sequence[int] = (512, 512, 512), augmentation: str = "ssp"):
        super().__init__(num_epochs, augmentation)
        self.head = ProjectionHead(deepest_channels(network), head_widths)
        self.loss = NTXentLoss(temperature, gather_distributed=is_distributed())

    def view_transforms(self, patch_size, rotation, mirror_axes, nnunet_transforms):
        view = self.view_augmentation(patch_size, rotation, mirror_axes, nnunet_transforms)
        return [view, view]

    def embed_pair(self, network: nn.Module, views: List[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Head embeddings of the two views, from one encoder pass over both."""
        z = self.head(network.encoder(torch.cat(views[:2]))[-1])
        return z[:len(views[0])], z[len(views[0]):]

    def embed(self, deepest_features: torch.Tensor) -> torch.Tensor:
        """Projection-head embeddings, where contrastive collapse shows first."""
        return self.head(deepest_features)

    def forward(self, network, views, positions, epoch):
        z_a, z_b = self.embed_pair(network, views)
        return self.loss(z_a, z_b)
