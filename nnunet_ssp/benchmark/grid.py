"""The benchmark grid: its settings, its runs, where each run's files live, and the nnU-Net command of each step.

Runs, in the order they are done:
- `pretrain_<method>`: `nnUNetv2_train D 2d P -tr nnUNetTrainerSSP_<M>[_<E>epochs][_<I>iters]`, once per method, on
  make-splits' pretraining fold P (every subject but the validation subjects the fine-tunings share);
- per labelled-subject count and seed (the fold make-splits appended for them): `baseline_n<N>_s<S>` with
  `nnUNetTrainer[_<E>epochs][_<I>iters]` from nnU-Net's initialisation, and `<method>_n<N>_s<S>` with
  `nnUNetTrainerSSPFinetune[...]` and `-pretrained_weights` of that method's pretraining checkpoint.
Every run but pretraining then predicts the test images and evaluates them with nnU-Net.

Recipes: with `pretrain_variants` and `finetune_variants` (variant tokens of `nnunet_ssp.variants`, or `default`)
each method is pretrained once per pretraining variant and fine-tuned per fine-tuning variant; the run and the
results name it `<method>[.<pretraining variant>][+<fine-tuning variant>]`, e.g. `mim.mask60+decoderTransfer_n1_s0`,
and every recipe is compared against the one baseline per size and seed.

nnU-Net names its output folder after trainer, plans and fold only, so the fine-tuning runs of different methods
would share one folder. Each method (and the baseline) therefore gets its own nnU-Net results root,
`<out>/models/<method>[.<pretraining variant>]`, passed to the subprocesses as `nnUNet_results`.
"""

import re
import shlex
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from nnunetv2.utilities.file_path_utilities import convert_trainer_plans_config_to_identifier

from nnunet_ssp.defaults import DEFAULT_RECIPE
from nnunet_ssp.errors import InputError
from nnunet_ssp.methods import get_method, method_names

BASELINE = "baseline"
PRETRAIN, FINETUNE = "pretrain", "finetune"
CONFIGURATION = "2d"
FINAL_CHECKPOINT = "checkpoint_final.pth"
CHECKPOINTS = (FINAL_CHECKPOINT, "checkpoint_latest.pth", "checkpoint_best.pth")  # what nnUNetv2_train --c reads
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

    def __post_init__(self):
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
    labelled_subjects: Optional[int] = None
    seed: Optional[int] = None
    pretraining: Optional["Run"] = None  # the pretraining run whose final checkpoint it starts from

    @property
    def label(self) -> str:
        """The recipe: `baseline` or `<method>[.<pretraining variant>][+<fine-tuning variant>]`."""
        if self.kind == PRETRAIN:
            return self.name[len(PRETRAIN) + 1:]
        return self.name[:-len(run_tag(self.labelled_subjects, self.seed)) - 1]

    def describe(self) -> str:
        """A short readable description."""
        if self.kind == PRETRAIN:
            return f"pretraining {self.label} ({self.trainer}, fold {self.fold})"
        start = "nnU-Net's initialisation" if self.kind == BASELINE else f"{self.pretraining.label} weights"
        return (f"{self.labelled_subjects} labelled subjects, seed {self.seed}, fold {self.fold}, from {start} "
                f"({self.trainer})")


@dataclass(frozen=True)
class Layout:
    """Where a benchmark keeps its files, below `out`."""
    out: Path
    dataset_name: str
    plans: str

    def results_root(self, run: Run) -> Path:
        """The nnU-Net results root of a run's subprocesses: one per pretraining (shared by the fine-tunings that
        start from it), and one for the baseline."""
        owner = run.pretraining if run.kind == FINETUNE else run
        return self.out / "models" / owner.label

    def model_folder(self, run: Run) -> Path:
        """nnU-Net's output folder of a run (fold_X below the results root)."""
        return (self.results_root(run) / self.dataset_name /
                convert_trainer_plans_config_to_identifier(run.trainer, self.plans, CONFIGURATION) / f"fold_{run.fold}")

    def checkpoint(self, run: Run) -> Path:
        """The final checkpoint nnU-Net writes for a run."""
        return self.model_folder(run) / FINAL_CHECKPOINT

    def run_folder(self, run: Run) -> Path:
        """The run's own folder: step logs, predictions, evaluation summary, finished marker."""
        return self.out / "runs" / run.name

    def predictions(self, run: Run) -> Path:
        return self.run_folder(run) / "predictions"

    def summary(self, run: Run) -> Path:
        """nnU-Net's evaluation summary of the test predictions."""
        return self.run_folder(run) / "summary.json"

    def marker(self, run: Run) -> Path:
        """The file whose presence (with matching content) marks the run finished."""
        return self.run_folder(run) / "done.json"

    def train_record(self, run: Run) -> Path:
        """The file that says the run's training started, or finished, while the run is not finished."""
        return self.run_folder(run) / "train.json"

    def log(self, run: Run, step: str) -> Path:
        return self.run_folder(run) / f"{step}.log"

    def outputs(self, run: Run) -> Dict[str, Path]:
        """The files a finished run has left."""
        files = {"checkpoint": self.checkpoint(run)}
        if run.kind != PRETRAIN:
            files["summary"] = self.summary(run)
        return files


def schedule_suffix(epochs: Optional[int], iters: Optional[int]) -> str:
    """`_<E>epochs_<I>iters`, leaving out what is None (the trainer's own default)."""
    return (f"_{epochs}epochs" if epochs else "") + (f"_{iters}iters" if iters else "")


def run_tag(labelled_subjects: int, seed: int) -> str:
    """`n<N>_s<S>`, the end of the name of a run with N labelled subjects and seed S."""
    return f"n{labelled_subjects}_s{seed}"


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
    from nnunet_ssp.variants import EPOCHS_TOKEN, ITERATIONS_TOKEN, find_token, schedule_variant

    epochs, iters = (None if find_token(variant, pattern) else value
                     for pattern, value in ((EPOCHS_TOKEN, epochs), (ITERATIONS_TOKEN, iters)))
    name = f"{base}_{variant}{schedule_suffix(epochs, iters)}"
    if schedule_variant(name) is None:
        raise InputError(f"{name} is no trainer: a token of {variant!r} is unknown, repeated, or does not apply to "
                         f"{base} (see nnunet_ssp.variants).")
    return name


def plan_runs(settings: BenchmarkSettings, folds: Dict[Tuple[int, int], int],
              pretraining_fold: Union[int, str] = "all") -> List[Run]:
    """Every run of the grid in order: pretraining per method, then per size and seed the baseline and each method.

    `folds` maps (labelled subjects, seed) to the fold index make-splits gave it; pretraining runs on
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


def nnunet_executable(name: str) -> str:
    """An nnU-Net console script: the one beside this Python if it is there, else the name for the PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else name


def train_command(run: Run, layout: Layout, device: str, pretrained: Optional[Path], resume: bool) -> List[str]:
    """`nnUNetv2_train` for a run: continuing its own checkpoint with `--c`, else from `pretrained` if given."""
    argv = [nnunet_executable("nnUNetv2_train"), layout.dataset_name, CONFIGURATION, str(run.fold),
            "-p", layout.plans, "-tr", run.trainer, "-device", device]
    if resume:
        return argv + ["--c"]
    return argv + (["-pretrained_weights", str(pretrained)] if pretrained is not None else [])


def predict_command(run: Run, layout: Layout, device: str, images: Path, processes: int) -> List[str]:
    """`nnUNetv2_predict` of the test images with the run's final checkpoint."""
    return [nnunet_executable("nnUNetv2_predict"), "-i", str(images), "-o", str(layout.predictions(run)),
            "-d", layout.dataset_name, "-c", CONFIGURATION, "-p", layout.plans, "-tr", run.trainer,
            "-f", str(run.fold), "-chk", FINAL_CHECKPOINT, "-device", device, "-npp", str(processes),
            "-nps", str(processes), "--disable_progress_bar"]


def evaluate_command(run: Run, layout: Layout, labels: Path, processes: int) -> List[str]:
    """`nnUNetv2_evaluate_folder` of the run's predictions against the test labels (3D Dice per structure)."""
    predictions = layout.predictions(run)
    return [nnunet_executable("nnUNetv2_evaluate_folder"), str(labels), str(predictions),
            "-djfile", str(predictions / "dataset.json"), "-pfile", str(predictions / "plans.json"),
            "-o", str(layout.summary(run)), "-np", str(processes)]
