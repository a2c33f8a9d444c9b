"""Trainer variants by name: a base trainer followed by suffix tokens, each one small change of a setting.

`nnUNetTrainerSSP_MIM_100epochs` trains 100 epochs; `nnUNetTrainerSSPFinetune_lr1e2_freeze10pct_20epochs_50iters`
fine-tunes at the from-scratch rate with the encoder frozen for the first 10 % of 20 epochs of 50 iterations;
`nnUNetTrainer_20epochs_50iters` is nnU-Net's own trainer on that schedule, the baseline of a fair comparison.
Tokens (each at most once, in any order):

    <E>epochs        number of epochs                       any trainer
    <I>iters         iterations per epoch (validation: a fifth, at least 1)
    lr<M>e<X>        peak learning rate M * 10^-X, e.g. lr1e2 = 0.01, lr5e3 = 0.005
    warmup<P>pct     linear warm-up over P % of the epochs     fine-tuning and pretraining
    freeze<P>pct     encoder frozen for the first P % of the epochs          fine-tuning
    encLr0p<D>       encoder at 0.D times the decoder's rate (ratio kept through the schedule)
    decoderTransfer  keep the pretrained decoder too (MIM); the default, decoderReinit, keeps the encoder only
    freshNorm        rescale the pretrained conv filters to the norms of a fresh initialisation (same function)
    labeledOnly      pretrain on the labeled training cases only (also spelled labelledOnly)   pretraining
    poolOnly         pretrain on the unlabeled pool only
    mask<P>          MIM: P % of the grid cells masked
    grid<G>          MIM: a G x G grid
    t0p<D>           PCL: positives closer than 0.D in base-to-apex position
    teacherCopy      DINO: the teacher starts as a copy of the student (DINO's paper); teacherOwn, the default,
                     gives it its own initialisation (the reference study)
    nnunetAug        MIM, SimCLR, PCL: nnU-Net's own augmentation for the views
    sspAug           MIM, SimCLR, PCL: SSP-strength augmentation for the views

Classes are made on first use and cached, so a name always gives the same class (which keeps them picklable).
"""

import inspect
import re
from typing import Callable, Dict, List, Optional, Tuple, Type

import torch

from nnunet_ssp.methods import METHODS, get_method_class, method_of_trainer

_cache: Dict[str, type] = {}

ANY, FINETUNE, PRETRAIN = "any", "finetune", "pretrain"


def _set(**values) -> Callable:
    def apply(trainer) -> None:
        for name, value in values.items():
            setattr(trainer, name, value)
    return apply


def _method_kwarg(name: str, value) -> Callable:
    def apply(trainer) -> None:
        trainer.method_kwargs[name] = value
    return apply


def _iterations(iters: int) -> Callable:
    return _set(num_iterations_per_epoch=iters, num_val_iterations_per_epoch=max(1, iters // 5))


ALL, TUNED = (ANY, FINETUNE, PRETRAIN), (FINETUNE, PRETRAIN)
EPOCHS_TOKEN, ITERATIONS_TOKEN = re.compile(r"([1-9]\d*)epochs?"), re.compile(r"([1-9]\d*)iters")


def find_token(name: str, pattern: re.Pattern) -> Optional[re.Match]:
    """The first '_'-separated token of `name` that `pattern` matches in full, or None."""
    return next(filter(None, (pattern.fullmatch(token) for token in name.split("_"))), None)


# token pattern -> (kinds of trainer it applies to, method keyword it needs or None, setter built from the match)
TOKENS: List[Tuple[re.Pattern, Tuple[str, ...], Optional[str], Callable]] = [
    (EPOCHS_TOKEN, ALL, None, lambda m: _set(num_epochs=int(m[1]))),
    (ITERATIONS_TOKEN, ALL, None, lambda m: _iterations(int(m[1]))),
    (re.compile(r"lr([1-9])e([1-9])"), ALL, None, lambda m: _set(initial_lr=int(m[1]) * 10.0 ** -int(m[2]))),
    (re.compile(r"warmup(\d+)pct"), TUNED, None, lambda m: _set(warmup_fraction=int(m[1]) / 100)),
    (re.compile(r"freeze(\d+)pct"), (FINETUNE,), None, lambda m: _set(freeze_encoder_fraction=int(m[1]) / 100)),
    (re.compile(r"encLr0p(\d+)"), (FINETUNE,), None, lambda m: _set(encoder_lr_scale=float(f"0.{m[1]}"))),
    (re.compile(r"decoder(Reinit|Transfer)"), (FINETUNE,), None,
     lambda m: _set(reinitialize_decoder=m[1] == "Reinit")),
    (re.compile(r"freshNorm"), (FINETUNE,), None, lambda m: _set(fresh_filter_norms=True)),
    (re.compile(r"(labell?ed|pool)Only"), (PRETRAIN,), None,
     lambda m: _set(ssp_data="pool" if m[1] == "pool" else "labeled")),
    (re.compile(r"mask(\d+)"), (PRETRAIN,), "mask_ratio", lambda m: _method_kwarg("mask_ratio", int(m[1]) / 100)),
    (re.compile(r"grid([1-9]\d*)"), (PRETRAIN,), "grid", lambda m: _method_kwarg("grid", int(m[1]))),
    (re.compile(r"t0p(\d+)"), (PRETRAIN,), "threshold",
     lambda m: _method_kwarg("threshold", float(f"0.{m[1]}"))),
    (re.compile(r"teacher(Own|Copy)"), (PRETRAIN,), "teacher_init",
     lambda m: _method_kwarg("teacher_init", m[1].lower())),
    (re.compile(r"(nnunet|ssp)Aug"), (PRETRAIN,), "augmentation", lambda m: _method_kwarg("augmentation", m[1])),
]


def base_trainers() -> Dict[str, type]:
    """Trainers that accept variant tokens, by name: nnU-Net's, the fine-tune trainer and each method's pretraining."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunet_ssp import finetune, pretrain

    pretraining = (pretrain.pretraining_trainer_class(m) for m in METHODS.values())
    return {c.__name__: c for c in (nnUNetTrainer, finetune.nnUNetTrainerSSPFinetune, *pretraining)}


def _family(base: type) -> str:
    from nnunet_ssp.finetune import nnUNetTrainerSSPFinetune
    from nnunet_ssp.pretrain import nnUNetTrainerSSP
    return FINETUNE if issubclass(base, nnUNetTrainerSSPFinetune) else \
        PRETRAIN if issubclass(base, nnUNetTrainerSSP) else ANY


def _setter(token: str, base: type) -> Optional[Tuple[re.Pattern, Callable]]:
    """The (pattern, setter) of `token` for trainers of `base`'s kind, or None if it does not apply."""
    family = _family(base)
    for pattern, kinds, keyword, make in TOKENS:
        match = pattern.fullmatch(token)
        if match is None or family not in kinds:
            continue
        if keyword is not None and keyword not in inspect.signature(get_method_class(base.method_name)).parameters:
            continue
        return pattern, make(match)
    return None


def variant_class(name: str) -> Optional[Type]:
    """The trainer class called `name`, made from its base and tokens; None if the name is not a variant."""
    if name in _cache:
        return _cache[name]
    bases = base_trainers()
    base_name = next((b for b in sorted(bases, key=len, reverse=True) if name.startswith(b + "_")), None)
    if base_name is None:
        return None
    base = bases[base_name]
    setters, patterns = [], set()
    for token in name[len(base_name) + 1:].split("_"):
        found = _setter(token, base)
        if found is None or found[0] in patterns:
            return None
        patterns.add(found[0])
        setters.append(found[1])

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        base.__init__(self, plans, configuration, fold, dataset_json, device)
        for apply in setters:
            apply(self)

    cls = type(name, (base,), {"__init__": __init__, "__module__": __name__, "__qualname__": name,
                               "__doc__": f"{base.__name__} with {name[len(base_name) + 1:]} (see nnunet_ssp.variants)."})
    _cache[name] = cls
    return cls


def trainer_class(name: str) -> Optional[Type]:
    """The trainer class called `name`: a method's pretraining trainer or a variant; None if there is none."""
    method = method_of_trainer(name)
    if method is not None:
        from nnunet_ssp.pretrain import pretraining_trainer_class
        return pretraining_trainer_class(method)
    return variant_class(name)


def __getattr__(name: str) -> type:
    cls = trainer_class(name)
    if cls is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return cls
