"""The benchmark grid: its settings, its runs and their trainer names (files: `layout`, commands: `steps`).

Runs, in the order they are done:
- `pretrain_<method>`: `nnUNetv2_train D C P -tr nnUNetTrainerSSP_<M>[_<E>epochs][_<I>iters]`, once per method, on
  make-splits' pretraining fold P (every subject but the validation subjects the fine-tunings share);
- per labeled-subject count and seed (the fold make-splits appended for them): `baseline_n<N>_s<S>` with
  `nnUNetTrainer[_<E>epochs][_<I>iters]` from nnU-Net's initialisation, and `<method>_n<N>_s<S>` with
  `nnUNetTrainerSSPFinetune[...]` and `-pretrained_weights` of that method's pretraining checkpoint.
Every run but pretraining then predicts the test images and evaluates them with nnU-Net.

Recipes: with `pretrain_variants` and `finetune_variants` (variant tokens of `nnunet_ssp.variants`, or `default`)
each method is pretrained once per pretraining variant and fine-tuned per fine-tuning variant; the run and the
results name it `<method>[.<pretraining variant>][+<fine-tuning variant>]`, e.g. `mim.mask60+decoderTransfer_n1_s0`,
and every recipe is compared against the one baseline per size and seed.

"""

import re
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from nnunet_ssp.defaults import DEFAULT_RECIPE
from nnunet_ssp.errors import InputError
from nnunet_ssp.methods import get_method, method_names

BASELINE = "baseline"
PRETRAIN, FINETUNE = "pretrain", "finetune"
CONFIGURATIONS = ("2d", "3d_fullres")
FINETUNE_TRAINER = "nnUNetTrainerSSPFinetune"
BASELINE_TRAINER = "nnUNetTrainer"
VARIANT_PATTERN = re.compile(r"[A-Za-z0-9]+(_[A-Za-z0-9]+)*")


@dataclass(frozen=True)
class BenchmarkSettings:
    """Everything that defines a benchmark; `command_line()` reproduces it."""
    dataset: str
    methods: Tuple[str, ...] = field(default_factory=lambda: tuple(method_names()))
    subjects: Tuple[int, ...] = (1, 2, 5, 10)
    seeds: Tuple[int, ...] = (0, 1, 2)
    pretrain_epochs: Optional[int] = None
    finetune_epochs: Optional[int] = None
    iters: Optional[int] = None
    plans: str = "nnUNetPlans"
    out: Optional[Path] = None
    device: str = "cuda"
    val_subjects: Optional[int] = None
    subject_pattern: Optional[str] = None
    pretrain_variants: Tuple[str, ...] = (DEFAULT_RECIPE,)
    finetune_variants: Tuple[str, ...] = (DEFAULT_RECIPE,)
    seed_trainings: bool = False  # seed each training with its split seed (pretraining: 0), see nnunet_ssp.seeding
    configuration: str = CONFIGURATIONS[0]

    def __post_init__(self):
        if self.configuration not in CONFIGURATIONS:
            raise InputError(f"The benchmark runs on configuration {' or '.join(CONFIGURATIONS)}, not "
                             f"{self.configuration!r}.")
        unknown = [m for m in self.methods if m not in method_names()]
        if unknown:
            raise InputError(f"Methods must be some of {', '.join(method_names())}, not "
                             f"{', '.join(unknown)}.")
        for option, value in self._schedule_options():
            if value is not None and value < 1:
                raise InputError(f"{option} {value} must be at least 1.")
        for option, variants in self._variant_options():
            bad = [v for v in variants if not VARIANT_PATTERN.fullmatch(v)]
            if bad or not variants:
                raise InputError(f"{option} takes variant tokens joined by '_' (e.g. lr1e2_warmup0pct) or "
                                 f"'{DEFAULT_RECIPE}', not {' '.join(map(repr, bad)) or 'nothing'}.")

    def _schedule_options(self) -> Tuple[Tuple[str, Optional[int]], ...]:
        return (("--pretrain-epochs", self.pretrain_epochs), ("--finetune-epochs", self.finetune_epochs),
                ("--iters", self.iters))

    def _variant_options(self) -> Tuple[Tuple[str, Tuple[str, ...]], ...]:
        return (("--pretrain-variants", self.pretrain_variants), ("--finetune-variants", self.finetune_variants))

    def command_line(self) -> str:
        """The `nnunet-ssp benchmark` command that runs this benchmark."""
        argv = ["nnunet-ssp", "benchmark", "-d", str(self.dataset), "--methods", *self.methods,
                "--subjects", *map(str, self.subjects), "--seeds", *map(str, self.seeds)]
        for option, value in (*self._schedule_options(), ("--val-subjects", self.val_subjects),
                              ("--subject-pattern", self.subject_pattern), ("--out", self.out)):
            if value is not None:
                argv += [option, str(value)]
        for option, variants in self._variant_options():
            if variants != (DEFAULT_RECIPE,):
                argv += [option, *variants]
        if self.seed_trainings:
            argv.append("--seed-trainings")
        if self.configuration != CONFIGURATIONS[0]:
            argv += ["-c", self.configuration]
        return shlex.join(argv + ["-p", self.plans, "-device", self.device])

    def record(self) -> dict:
        """The settings as JSON-ready values."""
        return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
                for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Run:
    """One nnU-Net training of the grid (plus prediction and evaluation of the test images unless pretraining)."""
    name: str
    kind: str  # PRETRAIN, FINETUNE or BASELINE
    method: str  # the SSP method, or BASELINE
    trainer: str
    fold: Union[int, str]
    labeled_subjects: Optional[int] = None
    seed: Optional[int] = None
    pretraining: Optional["Run"] = None  # the pretraining run whose final checkpoint it starts from

    @property
    def label(self) -> str:
        """The recipe: `baseline` or `<method>[.<pretraining variant>][+<fine-tuning variant>]`."""
        if self.kind == PRETRAIN:
            return self.name[len(PRETRAIN) + 1:]
        return self.name[:-len(run_tag(self.labeled_subjects, self.seed)) - 1]

    def describe(self) -> str:
        """A short readable description."""
        if self.kind == PRETRAIN:
            return f"pretraining {self.label} ({self.trainer}, fold {self.fold})"
        start = "nnU-Net's initialisation" if self.kind == BASELINE else f"{self.pretraining.label} weights"
        return (f"{self.labeled_subjects} labeled subjects, seed {self.seed}, fold {self.fold}, from {start} "
                f"({self.trainer})")


def schedule_suffix(epochs: Optional[int], iters: Optional[int]) -> str:
    """`_<E>epochs_<I>iters`, leaving out what is None (the trainer's own default)."""
    return (f"_{epochs}epochs" if epochs else "") + (f"_{iters}iters" if iters else "")


def run_tag(labeled_subjects: int, seed: int) -> str:
    """`n<N>_s<S>`, the end of the name of a run with N labeled subjects and seed S."""
    return f"n{labeled_subjects}_s{seed}"


def recipe_label(method: str, pretrain_variant: str = DEFAULT_RECIPE, finetune_variant: str = DEFAULT_RECIPE) -> str:
    """`<method>[.<pretraining variant>][+<fine-tuning variant>]`, leaving out the defaults."""
    return (method + ("" if pretrain_variant == DEFAULT_RECIPE else f".{pretrain_variant}")
            + ("" if finetune_variant == DEFAULT_RECIPE else f"+{finetune_variant}"))


def variant_trainer(base: str, variant: str, epochs: Optional[int], iters: Optional[int]) -> str:
    """The trainer name of `base` with a variant's tokens and the schedule suffix; InputError if no such trainer.

    A variant's own epochs or iters token takes the place of the schedule option's (`100epochs` pretrains longer).
    """
    if variant == DEFAULT_RECIPE:
        return base + schedule_suffix(epochs, iters)
    from nnunet_ssp.variants import EPOCHS_TOKEN, ITERATIONS_TOKEN, find_token, variant_class

    epochs, iters = (None if find_token(variant, pattern) else value
                     for pattern, value in ((EPOCHS_TOKEN, epochs), (ITERATIONS_TOKEN, iters)))
    name = f"{base}_{variant}{schedule_suffix(epochs, iters)}"
    if variant_class(name) is None:
        raise InputError(f"{name} is no trainer: a token of {variant!r} is unknown, repeated, or does not apply to "
                         f"{base} (see nnunet_ssp.variants).")
    return name


def plan_runs(settings: BenchmarkSettings, folds: Dict[Tuple[int, int], int],
              pretraining_fold: Union[int, str] = "all") -> List[Run]:
    """Every run of the grid in order: pretraining per method, then per size and seed the baseline and each method.

    `folds` maps (labeled subjects, seed) to the fold index make-splits gave it; pretraining runs on
    `pretraining_fold` (make-splits' pretraining fold in a benchmark).
    """
    pretrain_variants, finetune_variants = (tuple(dict.fromkeys(v)) for v in (settings.pretrain_variants,
                                                                             settings.finetune_variants))
    pretraining = {(m, v): Run(f"{PRETRAIN}_{recipe_label(m, v)}", PRETRAIN, m,
                               variant_trainer(get_method(m).trainer, v, settings.pretrain_epochs, settings.iters),
                               pretraining_fold)
                   for m in settings.methods for v in pretrain_variants}
    finetuners = {v: variant_trainer(FINETUNE_TRAINER, v, settings.finetune_epochs, settings.iters)
                  for v in finetune_variants}
    baseline = variant_trainer(BASELINE_TRAINER, DEFAULT_RECIPE, settings.finetune_epochs, settings.iters)
    runs = list(pretraining.values())
    for size in sorted(set(settings.subjects)):
        for seed in dict.fromkeys(settings.seeds):
            fold, tag = folds[size, seed], run_tag(size, seed)
            runs.append(Run(f"{BASELINE}_{tag}", BASELINE, BASELINE, baseline, fold, size, seed))
            runs += [Run(f"{recipe_label(m, pv, fv)}_{tag}", FINETUNE, m, finetuners[fv], fold, size, seed,
                         pretraining[m, pv])
                     for m in settings.methods for pv in pretrain_variants for fv in finetune_variants]
    return runs
