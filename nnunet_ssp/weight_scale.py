"""Rescale pretrained conv filters to the size of a fresh initialisation without changing what the network computes.

A conv followed by instance norm gives the same output when a filter and its bias are multiplied by a positive
number, so the filter's size carries no function. It does set the step SGD takes: the effective rate of a
scale-invariant filter falls with the square of its norm. Pretraining can grow an encoder's filters and so slow its
fine-tuning; rescaling gives each filter back the norm, and so the rate, of a fresh start.
"""

import torch
from dynamic_network_architectures.building_blocks.simple_conv_blocks import ConvDropoutNormReLU
from torch import nn
from torch.nn.modules.instancenorm import _InstanceNorm


def normed_convs(network: nn.Module) -> dict:
    """The conv blocks of `network` that have a norm after their conv, by module name."""
    return {name: block for name, block in network.named_modules()
            if isinstance(block, ConvDropoutNormReLU) and getattr(block, "norm", None) is not None}


def filter_norms(weight: torch.Tensor) -> torch.Tensor:
    """The norm of each output filter of a conv weight."""
    return weight.flatten(1).norm(dim=1)


@torch.no_grad()
def rescale_to_fresh_norm(network: nn.Module, fresh: nn.Module) -> int:
    """Give each output filter of `network`'s normed convs the norm it has in `fresh`; returns the number of convs."""
    blocks, references = normed_convs(network), normed_convs(fresh)
    for name, block in blocks.items():  # all checked before any is changed
        if not isinstance(block.norm, _InstanceNorm):
            raise ValueError(f"rescaling conv filters keeps the network's function only behind instance norm, but "
                             f"'{name}' is followed by {type(block.norm).__name__}")
    for name, block in blocks.items():
        weight, reference = block.conv.weight, references[name].conv.weight
        norms = filter_norms(weight)
        scale = torch.where(norms > 0, filter_norms(reference).to(norms) / norms, torch.ones_like(norms))
        weight.mul_(scale.view(-1, *[1] * (weight.dim() - 1)))
        if block.conv.bias is not None:  # scaled alike, so that dropout before the norm cannot break the invariance
            block.conv.bias.mul_(scale)
    return len(blocks)
