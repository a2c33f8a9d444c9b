"""The one list of self-supervised methods: per method its name, class, trainer and what the speed benchmark times.

Every other list of methods (the trainer classes, the trainer variants, the benchmark grid, the command-line
choices, the speed benchmark, the recipe versions) is derived from `METHODS`. Importing this module loads nothing
heavy, so the command line and the benchmark read names without importing training code.
"""

import importlib
from dataclasses import dataclass
from typing import Dict, List, Optional, Type


@dataclass(frozen=True)
class Method:
    """One self-supervised method and the names derived from it."""

    name: str  # command-line and checkpoint name, e.g. 'mim'
    method_class: str  # import path '<module>:<class>' of its views, head and loss
    trainer: str  # class name of its pretraining trainer (nnunet_ssp.pretrain)
    timed_passes: str  # the bare network passes the speed benchmark times beside its step (nnunet_ssp.speed.passes)
    # Bumped whenever a default of the method's trainer changes, so that the benchmark redoes runs made with the
    # former default instead of reusing them under the same trainer name.
    recipe_version: int = 1

    def load_class(self) -> Type:
        """The method class."""
        module, cls = self.method_class.split(":")
        return getattr(importlib.import_module(module), cls)


METHODS: Dict[str, Method] = {m.name: m for m in (
    # SimCLR 1: SGD at 0.1; 2: at 0.01.
    Method("simclr", "nnunet_ssp.methods.simclr:SimCLR", "nnUNetTrainerSSP_SimCLR", "encoder_two_views", 2),
    # PCL 1: SGD at 0.1; 2: at 0.01; 3: pairs exactly the threshold apart are negatives whatever float rounding does.
    Method("pcl", "nnunet_ssp.methods.pcl:PositionalContrastiveLearning", "nnUNetTrainerSSP_PCL",
           "encoder_two_views", 3),
    # DINO 2: the reference study's recipe (teacher's own initialisation, head over all crops at once, its crop
    # scales and blur, no weight decay on biases and norms, rate scaled with the batch).
    Method("dino", "nnunet_ssp.methods.dino:DINO", "nnUNetTrainerSSP_DINO", "teacher_and_student", 2),
    # MIM 1: 75 % masked; 2: 50 %.
    Method("mim", "nnunet_ssp.methods.mim:MaskedImageModelling", "nnUNetTrainerSSP_MIM", "masked_unet", 2),
)}


def method_names() -> List[str]:
    """The registered method names, in registry order."""
    return list(METHODS)


def get_method(name: str) -> Method:
    """The method registered under `name`; KeyError naming the known ones otherwise."""
    if name not in METHODS:
        raise KeyError(f"unknown SSP method {name!r}; known: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def method_of_trainer(trainer: str) -> Optional[Method]:
    """The method whose pretraining trainer is called `trainer`, or None."""
    return next((m for m in METHODS.values() if m.trainer == trainer), None)


def get_method_class(name: str) -> Type:
    """The method class registered under `name` (e.g. 'mim')."""
    return get_method(name).load_class()
