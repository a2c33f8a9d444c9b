"""Masked image modelling (MIM): reconstruct the masked cells of a grid from the rest, with the whole U-Net.

Each image of the batch gets its own mask: the patch is cut into `grid` x `grid` cells (3d: times `grid` cells along
the slice axis, or one per slice when it has fewer slices) and exactly round(mask_ratio * cells) of them, chosen at
random, are set to 0 (the mean after nnU-Net's z-scoring). The U-Net
sees the masked image; a 1x1 convolution beside its output layer maps the last decoder features to one channel per
input channel; the loss is the mean squared error over the masked pixels only:

    L = sum_{b,c,y,x} M_byx (R_bcyx - I_bcyx)^2 / (C * sum_{b,y,x} M_byx)

Encoder and decoder are trained (everything except the segmentation output layer).
"""

from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from nnunet_ssp.methods.base import DECODER, ENCODER, SSPMethod
from nnunet_ssp.methods.precision import in_float32

MASK_RATIO = 0.5  # the study's 75 % lost structures on the phantom (docs/studies/protocol_deviations.md)


def grid_cells(spatial_shape: Sequence[int], grid: int = 8) -> Tuple[int, ...]:
    """Cells along each axis: `grid` in-plane; along the slice axis of a 3D patch `grid`, or one cell per slice when
    the patch has fewer slices than that (whole slices of cells)."""
    if len(spatial_shape) not in (2, 3):
        raise ValueError(f"grid masking takes a 2D or 3D patch, got a patch size of {tuple(spatial_shape)}")
    in_plane = spatial_shape[-2:]
    if not 1 <= grid <= min(in_plane):
        raise ValueError(f"grid must lie in [1, {min(in_plane)}] for a {'x'.join(map(str, spatial_shape))} patch, "
                         f"got {grid}")
    return (*(min(grid, spatial_shape[0]) for _ in spatial_shape[:-2]), grid, grid)


def grid_mask(batch_size: int, spatial_shape: Sequence[int], grid: int = 8, mask_ratio: float = MASK_RATIO,
              device: Optional[torch.device] = None, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Boolean mask B x 1 x (D x) H x W, True on exactly round(mask_ratio * number of cells) random cells of each
    image; the cells are those of `grid_cells`."""
    cells_per_axis = grid_cells(spatial_shape, grid)
    if not 0.0 < mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must lie strictly between 0 and 1, got {mask_ratio}")
    num_cells = int(np.prod(cells_per_axis))
    num_masked = int(round(mask_ratio * num_cells))
    scores = torch.rand(batch_size, num_cells, device=device, generator=generator)
    masked_cells = scores.argsort(dim=1)[:, :num_masked]
    cells = torch.zeros(batch_size, num_cells, dtype=torch.bool, device=device)
    cells.scatter_(1, masked_cells, True)
    mask = cells.view(batch_size, *cells_per_axis)
    for axis, (size, count) in enumerate(zip(spatial_shape, cells_per_axis)):
        mask = mask.index_select(axis + 1, torch.arange(size, device=device) * count // size)
    return mask.unsqueeze(1)


@in_float32
def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the pixels where `mask` (B x 1 x (D x) H x W) is True, all channels."""
    weight = mask.to(prediction.dtype)
    squared = (prediction - target) ** 2 * weight
    return squared.sum() / (weight.sum() * prediction.shape[1]).clamp_min(1.0)


class DecoderFeatures:
    """Captures the input of the U-Net's last output layer (the full-resolution decoder features) on forward."""

    def __init__(self, network: nn.Module):
        self.features: Optional[torch.Tensor] = None
        network.decoder.seg_layers[-1].register_forward_pre_hook(self._capture)

    def _capture(self, module: nn.Module, inputs: Tuple[torch.Tensor]) -> None:
        self.features = inputs[0]

    def __call__(self, network: nn.Module, x: torch.Tensor) -> torch.Tensor:
        network(x)
        features, self.features = self.features, None
        return features


class MaskedImageModelling(SSPMethod):
    """MIM with a grid mask, a 1x1 reconstruction head on the decoder and MSE on masked pixels.

    Settings against the reference study's: docs/studies/protocol_deviations.md.
    """

    name = "mim"
    trained_parts = (ENCODER, DECODER)
    initial_lr = 1e-2
    weight_decay = 3e-5
    lr_decay = "cosine"

    def __init__(self, network: nn.Module, num_input_channels: int, patch_size: Sequence[int], num_epochs: int,
                 grid: int = 8, mask_ratio: float = MASK_RATIO, augmentation: str = "nnunet"):
        super().__init__(num_epochs, augmentation)
        grid_mask(1, patch_size, grid, mask_ratio)  # validates the arguments against the patch size
        self.grid = grid
        self.mask_ratio = mask_ratio
        decoder_channels = network.decoder.seg_layers[-1].in_channels
        conv = type(network.decoder.seg_layers[-1])
        self.reconstruction_head = conv(decoder_channels, num_input_channels, kernel_size=1, bias=True)
        self.decoder_features = DecoderFeatures(network)

    def reconstruct(self, network: nn.Module, image: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Mask `image`, run the U-Net and the head; returns (mask, reconstruction)."""
        mask = grid_mask(image.shape[0], image.shape[2:], self.grid, self.mask_ratio, device=image.device)
        masked = image.masked_fill(mask, 0.0)
        return mask, self.reconstruction_head(self.decoder_features(network, masked))

    def forward(self, network: nn.Module, views: List[torch.Tensor], positions: torch.Tensor,
                epoch: int) -> torch.Tensor:
        image = views[0]
        mask, reconstruction = self.reconstruct(network, image)
        return masked_mse(reconstruction, image, mask)

    @torch.no_grad()
    def write_visual(self, network: nn.Module, views: List[torch.Tensor], filename: str, num_images: int = 4) -> bool:
        """PNG with rows input, masked input and reconstruction (masked cells filled in) of a few images (of a 3D
        patch, its centre slice)."""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from nnunet_ssp.atomic import atomic_path

        image = views[0][:num_images]
        mask, reconstruction = self.reconstruct(network, image)
        filled = torch.where(mask, reconstruction, image)
        rows = [("input", image), ("masked input", image.masked_fill(mask, 0.0)), ("reconstruction", filled)]
        if image.ndim == 5:
            rows = [(title, tensor[:, :, tensor.shape[2] // 2]) for title, tensor in rows]
        fig, axes = plt.subplots(len(rows), image.shape[0], figsize=(2.2 * image.shape[0], 2.2 * len(rows)),
                                 squeeze=False)
        low, high = np.percentile(image[:, 0].float().cpu().numpy(), [1, 99])
        for r, (title, tensor) in enumerate(rows):
            for c in range(image.shape[0]):
                axes[r, c].imshow(tensor[c, 0].float().cpu().numpy(), cmap="gray", vmin=low, vmax=high)
                axes[r, c].set_axis_off()
            axes[r, 0].set_title(title, fontsize=9, loc="left")
        fig.tight_layout()
        with atomic_path(filename) as tmp:
            fig.savefig(tmp, format="png", dpi=80)
        plt.close(fig)
        return True
