"""SSP checkpoints: safe loading, atomic saving, and loading pretrained parts into a plans-built network."""

import os
import pickle
import re
import zipfile
from typing import Any, Iterable, List, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from nnunet_ssp.atomic import atomic_path
from nnunet_ssp.errors import InputError
from nnunet_ssp.methods.base import DECODER, ENCODER

SSP_RECORD_VERSION = 1
# numpy scalars nnU-Net's own trainer keeps in a checkpoint's log; everything else loads as tensors and plain values.
# The scalar is named numpy.core... in files written with numpy 1 and numpy._core... with numpy 2.
_SCALAR = (np._core if hasattr(np, "_core") else np.core).multiarray.scalar
NNUNET_NUMPY_GLOBALS = [_SCALAR, (_SCALAR, "numpy.core.multiarray.scalar"), (_SCALAR, "numpy._core.multiarray.scalar"),
                        np.dtype, np.dtype("float32").__class__, np.dtype("float64").__class__]


def without_numpy(obj: Any) -> Any:
    """`obj` with numpy scalars and arrays turned into Python numbers and lists, so `weights_only` loads it."""
    if isinstance(obj, dict):
        return {k: without_numpy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(without_numpy(v) for v in obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def save_checkpoint(checkpoint: dict, filename: str) -> None:
    """`torch.save` under a temporary name, renamed onto `filename` once complete."""
    with atomic_path(filename) as tmp:
        torch.save(checkpoint, tmp)


class CarriesCodeError(InputError):
    """A checkpoint whose pickle calls Python code, which loading with weights_only refuses."""


def load_checkpoint(filename: str, map_location: Union[str, torch.device] = "cpu") -> dict:
    """Load a checkpoint with `weights_only=True` (nnU-Net's logged numpy scalars allowed); a missing, truncated,
    foreign or code-carrying file raises InputError."""
    if os.path.isdir(filename):
        raise InputError(f"{filename} is a directory, not a checkpoint file.")
    if not os.path.isfile(filename):
        raise InputError(f"{filename} does not exist.")
    try:
        with torch.serialization.safe_globals(NNUNET_NUMPY_GLOBALS):
            checkpoint = torch.load(filename, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as e:
        refused = re.search(r"(?:Unsupported global: |unsupported )GLOBAL ([\w.]+)", str(e))
        if refused:
            raise CarriesCodeError(f"{filename} carries Python code ({refused.group(1)}) that loading with weights_only "
                             f"refuses; do not give it to nnU-Net's loaders unless you trust its source.") from e
        raise InputError(f"{filename} is not a readable checkpoint (truncated or not a safe torch file: "
                         f"{_first_line(e)}).") from e
    if not isinstance(checkpoint, dict) or "network_weights" not in checkpoint:
        raise InputError(f"{filename} is not an nnU-Net checkpoint: it has no 'network_weights'.")
    return checkpoint


def _first_line(error: Exception) -> str:
    """The first line of an exception's message (at most 160 characters), or its type's name."""
    text = str(error).strip()
    return text.splitlines()[0][:160] if text else type(error).__name__


def part_keys(state_keys: Iterable[str], parts: Sequence[str]) -> List[str]:
    """Keys of a U-Net state dict that belong to `parts` (encoder, decoder), output layers excluded."""
    prefixes = ("encoder.", "decoder.encoder.") if DECODER not in parts else ("encoder.", "decoder.")
    return [k for k in state_keys if k.startswith(prefixes) and ".seg_layers." not in k]


def load_pretrained_parts(network: nn.Module, checkpoint: Union[str, dict],
                          parts: Optional[Sequence[str]] = None) -> List[str]:
    """Copy the pretrained `parts` (default: what the checkpoint's SSP record says was trained) into `network`.

    Returns the loaded keys. A key of those parts that is missing or has another shape stops with InputError naming
    the first such key and both shapes.
    """
    filename = checkpoint if isinstance(checkpoint, str) else "the checkpoint"
    if isinstance(checkpoint, str):
        checkpoint = load_checkpoint(checkpoint)
    weights = checkpoint["network_weights"]
    if parts is None:
        parts = tuple(checkpoint.get("ssp", {}).get("trained_parts", (ENCODER, DECODER)))
    target = network.state_dict()
    keys = part_keys(target.keys(), parts)
    for key in keys:
        if key not in weights:
            raise InputError(f"{filename} does not fit this network: key {key} (shape {tuple(target[key].shape)}) "
                             f"is missing from the checkpoint.")
        if weights[key].shape != target[key].shape:
            raise InputError(f"{filename} does not fit this network: the first mismatching key {key} has shape "
                             f"{tuple(weights[key].shape)} in the checkpoint and {tuple(target[key].shape)} in the "
                             f"network.")
    target.update({k: weights[k] for k in keys})
    network.load_state_dict(target)
    return keys
