"""Run the benchmark grid through nnU-Net's own commands in subprocesses, skipping finished runs.

Files below `out` (default `$nnUNet_results/DatasetXXX/ssp_benchmark`):

    .lock                    held while a benchmark works here, so a second one is refused
    benchmark.json           the settings and command line of the last call
    benchmark.log            the runner's own log: every run started, finished or skipped, with its commands
    runs/<run>/              train.log, predict.log, evaluate.log (subprocess output), predictions/,
                             summary.json (nnU-Net's evaluation), done.json (the finished marker), train.json
                             (while the run is unfinished: its training started or finished), seeds.json (the
                             seeds its training ran with, nnunet_ssp.seeding)
    models/<pretraining>/    the nnU-Net results root of a pretraining and its fine-tunings (models/baseline: the
                             baseline's)
    test_images/             links to the labeled test images, only when imagesTs also holds unlabeled ones
    results.csv, curves.csv, slices.csv, report.md, dice_vs_subjects.png, dice_per_slice.png

Before anything trains, the dataset is audited (`nnunet_ssp.audit`: splits, test subjects, the pool of the
benchmark's configuration and the checkpoints of finished pretrainings), and each pretraining checkpoint again before a fine-tuning first starts from
it; a leak of a test or validation subject stops the benchmark before it trains anything more.

An interrupted run continues where it stopped (see `markers`): training that finished is kept and only prediction
and evaluation run again; training cut short continues from its checkpoint (`nnUNetv2_train --c`); a new training
first deletes the model folder's old checkpoints. A fine-tuning whose pretraining is done again is redone.
"""

import json
import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from nnunetv2.configuration import default_num_processes
from nnunetv2.paths import nnUNet_results
from nnunetv2.utilities.utils import get_identifiers_from_splitted_dataset_folder
from tqdm import tqdm

from nnunet_ssp.architectures import check_dataset_plans
from nnunet_ssp.atomic import atomic_dir, write_json
from nnunet_ssp.audit import audit_dataset
from nnunet_ssp.benchmark.curves import CURVES_FILE, curve_points, write_curves_csv
from nnunet_ssp.benchmark.grid import FINETUNE, PRETRAIN, BenchmarkSettings, Run, plan_runs
from nnunet_ssp.benchmark.layout import Layout
from nnunet_ssp.benchmark.markers import (TRAIN_FINISHED, TRAIN_INTERRUPTED, TRAIN_NOT_STARTED, finished_runs,
                                          pending_runs, train_record, train_state, write_marker, write_train_record)
from nnunet_ssp.benchmark.report import SETTINGS_FILE, BenchmarkReport, report_from_csv
from nnunet_ssp.benchmark.results import rows_from_summary, write_results_csv
from nnunet_ssp.benchmark.slice_dice import SLICES_FILE, run_slice_dice, write_slices_csv
from nnunet_ssp.benchmark.steps import evaluate_command, predict_command, train_command
from nnunet_ssp.environment import environment_exports
from nnunet_ssp.errors import InputError
from nnunet_ssp.labels import structure_names
from nnunet_ssp.locking import folder_lock
from nnunet_ssp.roots import dataset_name_of, preprocessed_configuration_folder, raw_dataset_folder
from nnunet_ssp.seeding import SEEDS_FILE, seeded_command
from nnunet_ssp.splits import make_splits
from nnunet_ssp.unlabeled import pool_flips_base_apex, pool_folder

RESULTS_FILE = "results.csv"
LOG_FILE = "benchmark.log"
DEFAULT_OUT = "ssp_benchmark"


class RunFailedError(RuntimeError):
    """An nnU-Net subprocess of the grid failed; the message names the run, the step and its log file."""


@dataclass(frozen=True)
class BenchmarkResult:
    """What a benchmark call did."""
    out: Path
    n_runs: int
    skipped: int
    done: int
    seconds: float
    report: BenchmarkReport
    folds: Dict[Tuple[int, int], int]  # (labeled subjects, seed) -> the fold index make-splits gave it

    def summary(self) -> str:
        """A few readable lines for the command line."""
        return "\n".join([
            f"Benchmark finished: {self.n_runs} runs, {self.done} done now, {self.skipped} already finished; "
            f"{timedelta(seconds=round(self.seconds))} elapsed.",
            f"  results: {self.out / RESULTS_FILE}",
            f"  report:  {self.report.report_file}",
            f"  plot:    {self.report.plot_file}"])


@dataclass(frozen=True)
class EvaluationSet:
    """The labeled test images a benchmark predicts and evaluates."""
    images: Path  # the folder nnUNetv2_predict reads
    labels: Path
    file_ending: str


def default_output_folder(dataset_name: str) -> Path:
    """`$nnUNet_results/DatasetXXX/ssp_benchmark`."""
    if not nnUNet_results.is_set():
        raise InputError("The environment variable nnUNet_results is not set; export it or pass --out.")
    return Path(nnUNet_results.get()) / dataset_name / DEFAULT_OUT


def run_benchmark(settings: BenchmarkSettings) -> BenchmarkResult:
    """Make the splits, do every pending run of the grid, then write results.csv and the report.

    Holds the lock of the output folder throughout: a second benchmark there is refused.
    """
    start = time.monotonic()
    dataset_name = dataset_name_of(settings.dataset)
    out = Path(settings.out) if settings.out is not None else default_output_folder(dataset_name)
    with folder_lock(out):
        return _run_grid(settings, Layout(out.resolve(), dataset_name, settings.plans, settings.configuration),
                         start)


def _run_grid(settings: BenchmarkSettings, layout: Layout, start: float) -> BenchmarkResult:
    """`run_benchmark` once it holds the output folder."""
    dataset_name = layout.dataset_name
    if settings.methods:  # nnU-Net's baseline trains whatever network the plans build
        check_dataset_plans(dataset_name, settings.plans, settings.configuration)
    preprocessed_configuration_folder(dataset_name, settings.plans, settings.configuration)
    raw = raw_dataset_folder(dataset_name)
    splits = make_splits(dataset_name, settings.subjects, settings.seeds, settings.val_subjects,
                         settings.subject_pattern, settings.plans, settings.configuration)
    runs = plan_runs(settings, splits.folds, splits.pretraining_fold)
    audited = {run for run in finished_runs(runs, layout) if run.kind == PRETRAIN}
    _refuse_leaks(layout, [layout.checkpoint(run) for run in audited])
    evaluation = evaluation_set(raw, layout.out)
    write_json({"command": settings.command_line(), "settings": settings.record(), "dataset": dataset_name,
                "folds": [{"labeled_subjects": n, "seed": s, "fold": f} for (n, s), f in splits.folds.items()]},
               layout.out / SETTINGS_FILE)
    log = _RunnerLog(layout.out / LOG_FILE)
    pending = pending_runs(runs, layout)
    log.write(f"benchmark {settings.command_line()}: {len(runs)} runs, {len(pending)} to do")
    for run in runs:
        if run not in pending:
            log.write(f"skipped {run.name} (finished)")
    print(f"{dataset_name}: {len(runs)} runs, {len(runs) - len(pending)} finished, {len(pending)} to do; "
          f"subprocess logs in {layout.out / 'runs'}/<run>/")
    names = structure_names(json.loads((raw / "dataset.json").read_text()))
    bar = tqdm(pending, desc="benchmark", unit="run")
    try:
        for k, run in enumerate(bar, start=1):
            bar.set_postfix_str(run.name)
            if run.kind == FINETUNE and run.pretraining not in audited:
                _refuse_leaks(layout, [layout.checkpoint(run.pretraining)])
                audited.add(run.pretraining)
            _execute(run, layout, settings, evaluation, log, f"[{k}/{len(pending)}]", start)
            _write_results(runs, layout, names, evaluation)
    except (KeyboardInterrupt, RunFailedError) as e:
        log.write(f"stopped: {e or 'interrupted'}")
        raise
    _write_results(runs, layout, names, evaluation)
    report = report_from_csv(layout.out / RESULTS_FILE, settings.command_line())
    log.write(f"benchmark done: {len(pending)} runs done, {len(runs) - len(pending)} skipped")
    return BenchmarkResult(layout.out, len(runs), len(runs) - len(pending), len(pending), time.monotonic() - start,
                           report, splits.folds)


def _refuse_leaks(layout: Layout, checkpoints: List[Path]) -> None:
    """Audit the dataset and `checkpoints`; InputError naming the leaks when a subject is where it must not be."""
    audit = audit_dataset(layout.dataset_name, layout.plans, checkpoints, layout.configuration)
    if audit.leaks:
        raise InputError(f"The audit of {layout.dataset_name} found subjects where they must not be "
                         f"({'; '.join(audit.leaks)}); see nnunet-ssp audit -d {layout.dataset_name} -p "
                         f"{layout.plans} -c {layout.configuration}.")


class _RunnerLog:
    """Timestamped lines appended to benchmark.log."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, line: str) -> None:
        with open(self.path, "a") as f:
            f.write(f"{datetime.now().isoformat(timespec='seconds')} {line}\n")


def prepare_steps(run: Run, layout: Layout, device: str, evaluation: EvaluationSet,
                  seed_trainings: bool = False) -> Dict[str, List[str]]:
    """The commands still to run for a pending run, by step: training, unless it finished before (train.json), then
    prediction and evaluation unless pretraining.

    Training continues an interrupted training of the same run with `--c`; a new training first deletes the old
    checkpoints of the model folder, so that if it is interrupted in turn, it continues from its own. It runs
    through `nnunet_ssp.seeding`, seeded with the run's split seed (pretraining: 0) when `seed_trainings`, else
    with a drawn seed, recorded in `runs/<run>/seeds.json`.
    """
    steps = {}
    state = train_state(run, layout)
    if state == TRAIN_NOT_STARTED:
        for path in layout.checkpoints(run):
            path.unlink(missing_ok=True)
    if state != TRAIN_FINISHED:
        pretrained = layout.checkpoint(run.pretraining) if run.pretraining else None
        seed = (run.seed or 0) if seed_trainings else None
        steps["train"] = seeded_command(layout.run_folder(run) / SEEDS_FILE, seed,
                                        train_command(run, layout, device, pretrained, state == TRAIN_INTERRUPTED)[1:])
    if run.kind != PRETRAIN:
        processes = worker_processes()
        steps["predict"] = predict_command(run, layout, device, evaluation.images, processes)
        steps["evaluate"] = evaluate_command(run, layout, evaluation.labels, processes)
        shutil.rmtree(layout.predictions(run), ignore_errors=True)
    return steps


def _execute(run: Run, layout: Layout, settings: BenchmarkSettings, evaluation: EvaluationSet, log: _RunnerLog,
             counter: str, start: float) -> None:
    """Do the steps left of one run and mark it finished; RunFailedError if a step fails."""
    layout.marker(run).unlink(missing_ok=True)
    layout.run_folder(run).mkdir(parents=True, exist_ok=True)
    steps = prepare_steps(run, layout, settings.device, evaluation, settings.seed_trainings)
    env = {**os.environ, "nnUNet_results": str(layout.results_root(run)),
           "nnUNet_extTrainer": environment_exports()["nnUNet_extTrainer"]}
    tqdm.write(f"{counter} {run.name}: {run.describe()}")
    commands, seconds = [], {}
    if "train" not in steps:
        trained = train_record(run, layout)
        commands.append(trained["command"])
        seconds["train"] = trained["seconds"]
        log.write(f"kept {run.name} train (finished before)")
        tqdm.write("    train finished before; kept")
    for step, argv in steps.items():
        log.write(f"start {run.name} {step}: nnUNet_results={shlex.quote(env['nnUNet_results'])} {shlex.join(argv)}")
        if step == "train":
            write_train_record(run, layout, argv)
        began = time.monotonic()
        call_logged(argv, env, layout.log(run, step), f"{run.name}: nnU-Net's {step} step")
        seconds[step] = round(time.monotonic() - began, 1)
        if step == "train":
            write_train_record(run, layout, argv, seconds[step])
        commands.append(argv)
        tqdm.write(f"    {step} done in {timedelta(seconds=round(seconds[step]))} "
                   f"(elapsed {timedelta(seconds=round(time.monotonic() - start))})")
    layout.train_record(run).unlink()  # before the marker: deleting done.json must redo the training too
    write_marker(run, layout, commands, seconds)
    log.write(f"finished {run.name} in {sum(seconds.values()):.1f} s")


def worker_processes() -> int:
    """nnU-Net's worker count (`nnUNet_def_n_proc`) read at call time, not when nnU-Net was imported."""
    return max(1, int(os.environ.get("nnUNet_def_n_proc", default_num_processes)))


def call_logged(argv: List[str], env: Dict[str, str], log_file: Path, what: str) -> None:
    """Run `argv` with its output in `log_file`; RunFailedError naming `what` and the log if it fails."""
    with open(log_file, "w") as f:
        f.write(f"$ nnUNet_results={shlex.quote(env['nnUNet_results'])} {shlex.join(argv)}\n")
        f.flush()
        code = subprocess.run(argv, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise RunFailedError(f"{what} exited with code {code}; see {log_file}.")


def evaluation_set(raw: Path, out: Path) -> EvaluationSet:
    """The test images to predict and their labels: imagesTs itself, or links to its labeled cases."""
    images, labels = raw / "imagesTs", raw / "labelsTs"
    file_ending = json.loads((raw / "dataset.json").read_text())["file_ending"]
    for folder in (images, labels):
        if not folder.is_dir():
            raise InputError(f"{folder} is missing, but the benchmark evaluates on the labeled test images.")
    cases = [str(c) for c in get_identifiers_from_splitted_dataset_folder(str(images), file_ending)]
    labeled = [c for c in cases if (labels / f"{c}{file_ending}").is_file()]
    if not labeled:
        raise InputError(f"{labels} holds a label of none of the test images in {images}.")
    if len(labeled) == len(cases):
        return EvaluationSet(images, labels, file_ending)
    with atomic_dir(out / "test_images") as tmp:
        for case in labeled:
            for image in images.glob(f"{case}_[0-9][0-9][0-9][0-9]{file_ending}"):
                (tmp / image.name).symlink_to(image.resolve())
    return EvaluationSet(out / "test_images", labels, file_ending)


def _write_results(runs: Sequence[Run], layout: Layout, names: dict, evaluation: EvaluationSet) -> None:
    """results.csv from the evaluation summaries, curves.csv from the training logs, and slices.csv from the
    predictions and test labels, of every finished run of the grid."""
    rows, points, slices = [], [], []
    cases = preprocessed_configuration_folder(layout.dataset_name, layout.plans, layout.configuration)
    flip = pool_flips_base_apex(pool_folder(cases.parent, cases.name))  # base and apex as pretraining has them
    for run in finished_runs(runs, layout):
        if run.kind != PRETRAIN:
            rows += rows_from_summary(layout.summary(run), names, evaluation.file_ending, run.label,
                                      run.labeled_subjects, run.seed, run.fold)
            points += curve_points(layout.checkpoint(run), run.trainer, run.label, run.labeled_subjects, run.seed,
                                   run.fold)
            slices += run_slice_dice(layout.predictions(run), evaluation.labels, evaluation.file_ending, names,
                                     run.label, run.labeled_subjects, run.seed, run.fold, flip)
    write_results_csv(rows, layout.out / RESULTS_FILE)
    write_curves_csv(points, layout.out / CURVES_FILE)
    write_slices_csv(slices, layout.out / SLICES_FILE)
