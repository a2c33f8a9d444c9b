"""Self-supervised methods, one module each, and the registry from method name to class."""

import importlib
from typing import Dict, Type

METHOD_CLASSES: Dict[str, str] = {
    "simclr": "nnunet_ssp.methods.simclr:SimCLR",
    "pcl": "nnunet_ssp.methods.pcl:PositionalContrastiveLearning",
    "dino": "nnunet_ssp.methods.dino:DINO",
    "mim": "nnunet_ssp.methods.mim:MaskedImageModelling",
}


def get_method_class(name: str) -> Type:
    """The method class registered under `name` (e.g. 'mim')."""
    if name not in METHOD_CLASSES:
        raise KeyError(f"unknown SSP method {name!r}; known: {', '.join(sorted(METHOD_CLASSES))}")
    module, cls = METHOD_CLASSES[name].split(":")
    return getattr(importlib.import_module(module), cls)
