"""Losses in float32 under mixed precision: nnU-Net trains on CUDA under fp16 autocast, whose range and precision the
losses' temperature divisions, normalisations, exponentials and sums do not survive (1 / 0.02 scales cosine
similarities to 50; a squared norm of 256 values of 16 exceeds fp16's 65504)."""

import functools
from typing import Any, Callable

import torch


def _float32(value: Any) -> Any:
    """`value` with half-precision tensors (also inside lists and tuples) cast to float32; float64 stays."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() and torch.finfo(value.dtype).bits < 32 else value
    if isinstance(value, (list, tuple)):
        return type(value)(_float32(v) for v in value)
    return value


def _device_type(values) -> str:
    """The device type of the first tensor in `values` (searching lists and tuples), or 'cpu'."""
    for value in values:
        if isinstance(value, torch.Tensor):
            return value.device.type
        if isinstance(value, (list, tuple)) and any(isinstance(v, (torch.Tensor, list, tuple)) for v in value):
            return _device_type(value)
    return "cpu"


def in_float32(loss: Callable) -> Callable:
    """Decorate a loss (function or forward method) to run in at least float32: half-precision tensor arguments are
    cast up and autocast is off for its operations (it would run matmuls and einsums in half precision again)."""

    @functools.wraps(loss)
    def float32_loss(*args, **kwargs):
        with torch.autocast(_device_type([*args, *kwargs.values()]), enabled=False):
            return loss(*_float32(args), **{k: _float32(v) for k, v in kwargs.items()})

    return float32_loss
