"""Heads that turn the deepest encoder feature map into the embeddings the SSP losses compare."""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from nnunet_ssp.methods.precision import in_float32


def global_average_pool(feature_map: torch.Tensor) -> torch.Tensor:
    """Mean over the spatial axes of an N x C x H x W (2d) or N x C x D x H x W (3d) feature map, giving N x C."""
    if feature_map.ndim not in (4, 5):
        raise ValueError(f"expected a 3D N x C x D x H x W or 2D N x C x H x W feature map, got shape "
                         f"{tuple(feature_map.shape)}.")
    return feature_map.mean(dim=tuple(range(2, feature_map.ndim)))


class ProjectionHead(nn.Module):
    """Global average pool, then an MLP of Linear layers with BatchNorm and ReLU between them (SimCLR and PCL).

    BatchNorm after each hidden layer (as in SimCLR's own head) because nnU-Net's encoders end in InstanceNorm, whose
    pooled features barely differ between images: without it the embeddings stayed collapsed on the phantom.

    Args:
        in_channels: channels of the deepest encoder stage.
        widths: output width of each Linear layer, first to last.
        batch_norm: BatchNorm1d after each hidden Linear layer.
    """

    def __init__(self, in_channels: int, widths: Sequence[int] = (512, 512, 512), batch_norm: bool = True) -> None:
        super().__init__()
        if in_channels < 1 or len(widths) == 0 or min(widths) < 1:
            raise ValueError(f"the projection head needs in_channels >= 1 and at least one positive width, "
                             f"got in_channels={in_channels} and widths={tuple(widths)}.")
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip([in_channels, *widths[:-1]], widths):
            layers += [nn.Linear(fan_in, fan_out), *([nn.BatchNorm1d(fan_out)] if batch_norm else []),
                       nn.ReLU(inplace=True)]
        self.mlp = nn.Sequential(*layers[:-2 if batch_norm else -1])

    @in_float32  # a small MLP: in half precision it blurred the contrastive gradients (tests/test_mixed_precision.py)
    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        """Embeddings (N x widths[-1]) of an N x C x H x W feature map."""
        return self.mlp(global_average_pool(feature_map))


class DINOHead(nn.Module):
    """Global average pool, MLP with BatchNorm and GELU, L2 normalisation, weight-normalised prototype layer (DINO).

    in -> hidden -> hidden -> bottleneck (Linear, BatchNorm, GELU between), then the bottleneck vector is
    L2-normalised and scored against `out_dim` prototypes by a bias-free weight-normalised Linear layer whose
    weight-norm gain is fixed to 1, so each output is a cosine similarity to one prototype (as in DINO).

    Args:
        in_channels: channels of the deepest encoder stage.
        hidden_dim: width of the two hidden layers.
        bottleneck_dim: width of the normalised bottleneck.
        out_dim: number of prototypes (the dimension the DINO loss works in).
    """

    def __init__(self, in_channels: int, hidden_dim: int = 2048, bottleneck_dim: int = 256,
                 out_dim: int = 8192) -> None:
        super().__init__()
        if min(in_channels, hidden_dim, bottleneck_dim, out_dim) < 1:
            raise ValueError(f"all DINO head widths must be positive, got in_channels={in_channels}, "
                             f"hidden_dim={hidden_dim}, bottleneck_dim={bottleneck_dim}, out_dim={out_dim}.")
        self.mlp = nn.Sequential(
            nn.Linear(in_channels, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.GELU(),
            nn.Linear(hidden_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.GELU(),
            nn.Linear(hidden_dim, bottleneck_dim),
        )
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                nn.init.trunc_normal_(layer.weight, std=0.02)
                nn.init.zeros_(layer.bias)
        self.last_layer = weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        gain = self.last_layer.parametrizations.weight.original0
        with torch.no_grad():
            gain.fill_(1.0)
        gain.requires_grad = False

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        """Prototype scores (N x out_dim) of an N x C x H x W feature map."""
        return self.project(global_average_pool(feature_map))

    def project(self, pooled: torch.Tensor) -> torch.Tensor:
        """Prototype scores (N x out_dim) of pooled features (N x C); BatchNorm statistics span all N rows."""
        hidden = self.mlp(pooled)
        # normalised in at least float32: a squared norm overflows float16 from values of 16
        return self.last_layer(F.normalize(hidden.to(torch.promote_types(hidden.dtype, torch.float32)), dim=1))

    def cancel_last_layer_gradients(self) -> None:
        """Drop the prototype layer's gradients so the next optimiser step leaves it alone (DINO, first epoch)."""
        for parameter in self.last_layer.parameters():
            parameter.grad = None
