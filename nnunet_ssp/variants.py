"""Variants of every trainer by name: `<Trainer>[_<E>epochs][_<I>iters][_labelledOnly|_poolOnly]`.

`nnUNetTrainerSSP_MIM_100epochs` trains 100 epochs; `nnUNetTrainerSSPFinetune_20epochs_50iters` trains 20 epochs of
50 iterations (validation: a fifth of that, at least 1). `nnUNetTrainer_<E>epochs_<I>iters` gives nnU-Net's own
trainer on the same schedule, the baseline of a fair comparison. For pretraining trainers, `_labelledOnly` samples
only the labelled training cases and `_poolOnly` only the unlabeled pool (default: both). Classes are made on first
use and cached, so the same name always gives the same class (which keeps them picklable).
"""

import re
from typing import Dict, Optional, Type

import torch

_VARIANT = re.compile(r"^(?P<base>nnUNetTrainer\w*?)(?:_(?P<epochs>\d+)epochs?)?(?:_(?P<iters>\d+)iters)?"
                      r"(?:_(?P<data>labelled|pool)Only)?$")
_cache: Dict[str, type] = {}


def base_trainers() -> Dict[str, type]:
    """Trainers that accept variant suffixes, by name."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunet_ssp import finetune, pretrain

    return {c.__name__: c for c in (nnUNetTrainer, finetune.nnUNetTrainerSSPFinetune, pretrain.nnUNetTrainerSSP_SimCLR,
                                    pretrain.nnUNetTrainerSSP_PCL, pretrain.nnUNetTrainerSSP_DINO,
                                    pretrain.nnUNetTrainerSSP_MIM)}


def schedule_variant(name: str) -> Optional[Type]:
    """The trainer class called `name`, made from its base and suffixes; None if the name is not a variant."""
    if name in _cache:
        return _cache[name]
    match = _VARIANT.match(name)
    if match is None or not (match["epochs"] or match["iters"] or match["data"]):
        return None
    base = base_trainers().get(match["base"])
    epochs = int(match["epochs"]) if match["epochs"] else None
    iters = int(match["iters"]) if match["iters"] else None
    data = match["data"]
    if base is None or epochs == 0 or iters == 0 or (data and not hasattr(base, "method_name")):
        return None

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        base.__init__(self, plans, configuration, fold, dataset_json, device)
        if epochs is not None:
            self.num_epochs = epochs
        if iters is not None:
            self.num_iterations_per_epoch = iters
            self.num_val_iterations_per_epoch = max(1, iters // 5)
        if data is not None:
            self.ssp_data = data

    cls = type(name, (base,), {"__init__": __init__, "__module__": __name__, "__qualname__": name,
                               "__doc__": f"{base.__name__} with {epochs or 'default'} epochs of "
                                          f"{iters or 'default'} iterations, data: {data or 'default'}."})
    _cache[name] = cls
    return cls


def __getattr__(name: str) -> type:
    cls = schedule_variant(name)
    if cls is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return cls
