"""Run the benchmark grid through nnU-Net's own commands in subprocesses, skipping finished runs.

Files below `out` (default `$nnUNet_results/DatasetXXX/ssp_benchmark`):

    benchmark.json           the settings and command line of the last call
    benchmark.log            the runner's own log: every run started, finished or skipped, with its commands
    runs/<run>/              train.log, predict.log, evaluate.log (subprocess output), predictions/,
                             summary.json (nnU-Net's evaluation), done.json (the finished marker)
    models/<method>/         the nnU-Net results root of that method's runs (and of the baseline's)
    test_images/             links to the labelled test images, only when imagesTs also holds unlabelled ones
    results.csv, report.md, dice_vs_subjects.png

A run that was interrupted is done again from its start, except that training left unfinished with a
`checkpoint_latest.pth` continues from it (`nnUNetv2_train --c`).
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
from typing import Dict, List, Sequence

from nnunetv2.configuration import default_num_processes
from nnunetv2.paths import nnUNet_results
from nnunetv2.utilities.utils import get_identifiers_from_splitted_dataset_folder
from tqdm import tqdm

from nnunet_ssp.atomic import atomic_dir, write_json
from nnunet_ssp.benchmark.grid import (PRETRAIN, BenchmarkSettings, Layout, Run, evaluate_command,
                                       plan_runs, predict_command, train_command)
from nnunet_ssp.benchmark.markers import finished_runs, pending_runs, write_marker
from nnunet_ssp.benchmark.report import SETTINGS_FILE, BenchmarkReport, report_from_csv
from nnunet_ssp.benchmark.results import rows_from_summary, structure_names, write_results_csv
from nnunet_ssp.converters.roots import dataset_name_of, raw_dataset_folder
from nnunet_ssp.environment import environment_exports
from nnunet_ssp.errors import InputError
from nnunet_ssp.splits import make_splits

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
    """The labelled test images a benchmark predicts and evaluates."""
    images: Path  # the folder nnUNetv2_predict reads
    labels: Path
    file_ending: str


def default_output_folder(dataset_name: str) -> Path:
    """`$nnUNet_results/DatasetXXX/ssp_benchmark`."""
    if not nnUNet_results.is_set():
        raise InputError("The environment variable nnUNet_results is not set; export it or pass --out.")
    return Path(nnUNet_results.get()) / dataset_name / DEFAULT_OUT


def run_benchmark(settings: BenchmarkSettings) -> BenchmarkResult:
    """Make the splits, do every pending run of the grid, then write results.csv and the report."""
    start = time.monotonic()
    dataset_name = dataset_name_of(settings.dataset)
    raw = raw_dataset_folder(dataset_name)
    splits = make_splits(dataset_name, settings.subjects, settings.seeds, settings.val_subjects,
                         settings.subject_pattern, settings.plans)
    out = Path(settings.out) if settings.out is not None else default_output_folder(dataset_name)
    layout = Layout(out.resolve(), dataset_name, settings.plans)
    evaluation = evaluation_set(raw, layout.out)
    runs = plan_runs(settings, splits.folds)
    write_json({"command": settings.command_line(), "settings": settings.record(), "dataset": dataset_name,
                "folds": [{"labelled_subjects": n, "seed": s, "fold": f} for (n, s), f in splits.folds.items()]},
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
            _execute(run, layout, settings.device, evaluation, log, f"[{k}/{len(pending)}]", start)
            _write_results(runs, layout, names, evaluation.file_ending)
    except (KeyboardInterrupt, RunFailedError) as e:
        log.write(f"stopped: {e or 'interrupted'}")
        raise
    _write_results(runs, layout, names, evaluation.file_ending)
    report = report_from_csv(layout.out / RESULTS_FILE, settings.command_line())
    log.write(f"benchmark done: {len(pending)} runs done, {len(runs) - len(pending)} skipped")
    return BenchmarkResult(layout.out, len(runs), len(runs) - len(pending), len(pending), time.monotonic() - start,
                           report)


class _RunnerLog:
    """Timestamped lines appended to benchmark.log."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, line: str) -> None:
        with open(self.path, "a") as f:
            f.write(f"{datetime.now().isoformat(timespec='seconds')} {line}\n")


def _execute(run: Run, layout: Layout, device: str, evaluation: EvaluationSet, log: _RunnerLog, counter: str,
             start: float) -> None:
    """Train (then predict and evaluate) one run and mark it finished; RunFailedError if a step fails."""
    layout.marker(run).unlink(missing_ok=True)
    layout.run_folder(run).mkdir(parents=True, exist_ok=True)
    model = layout.model_folder(run)
    resume = (model / "checkpoint_latest.pth").is_file() and not (model / "checkpoint_final.pth").is_file()
    pretrained = layout.checkpoint(run.pretraining) if run.pretraining else None
    steps = {"train": train_command(run, layout, device, pretrained, resume)}
    if run.kind != PRETRAIN:
        processes = max(1, default_num_processes)
        steps["predict"] = predict_command(run, layout, device, evaluation.images, processes)
        steps["evaluate"] = evaluate_command(run, layout, evaluation.labels, processes)
        shutil.rmtree(layout.predictions(run), ignore_errors=True)
    env = {**os.environ, "nnUNet_results": str(layout.results_root(run)),
           "nnUNet_extTrainer": environment_exports()["nnUNet_extTrainer"]}
    tqdm.write(f"{counter} {run.name}: {run.describe()}")
    seconds = {}
    for step, argv in steps.items():
        log.write(f"start {run.name} {step}: nnUNet_results={shlex.quote(env['nnUNet_results'])} {shlex.join(argv)}")
        began = time.monotonic()
        call_logged(argv, env, layout.log(run, step), f"{run.name}: nnU-Net's {step} step")
        seconds[step] = round(time.monotonic() - began, 1)
        tqdm.write(f"    {step} done in {timedelta(seconds=round(seconds[step]))} "
                   f"(elapsed {timedelta(seconds=round(time.monotonic() - start))})")
    write_marker(run, layout, list(steps.values()), seconds)
    log.write(f"finished {run.name} in {sum(seconds.values()):.1f} s")


def call_logged(argv: List[str], env: Dict[str, str], log_file: Path, what: str) -> None:
    """Run `argv` with its output in `log_file`; RunFailedError naming `what` and the log if it fails."""
    with open(log_file, "w") as f:
        f.write(f"$ nnUNet_results={shlex.quote(env['nnUNet_results'])} {shlex.join(argv)}\n")
        f.flush()
        code = subprocess.run(argv, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise RunFailedError(f"{what} exited with code {code}; see {log_file}.")


def evaluation_set(raw: Path, out: Path) -> EvaluationSet:
    """The test images to predict and their labels: imagesTs itself, or links to its labelled cases."""
    images, labels = raw / "imagesTs", raw / "labelsTs"
    file_ending = json.loads((raw / "dataset.json").read_text())["file_ending"]
    for folder in (images, labels):
        if not folder.is_dir():
            raise InputError(f"{folder} is missing, but the benchmark evaluates on the labelled test images.")
    cases = [str(c) for c in get_identifiers_from_splitted_dataset_folder(str(images), file_ending)]
    labelled = [c for c in cases if (labels / f"{c}{file_ending}").is_file()]
    if not labelled:
        raise InputError(f"{labels} holds a label of none of the test images in {images}.")
    if len(labelled) == len(cases):
        return EvaluationSet(images, labels, file_ending)
    with atomic_dir(out / "test_images") as tmp:
        for case in labelled:
            for image in images.glob(f"{case}_[0-9][0-9][0-9][0-9]{file_ending}"):
                (tmp / image.name).symlink_to(image.resolve())
    return EvaluationSet(out / "test_images", labels, file_ending)


def _write_results(runs: Sequence[Run], layout: Layout, names: dict, file_ending: str) -> None:
    """results.csv from the evaluation summaries of every finished run of the grid."""
    rows = []
    for run in finished_runs(runs, layout):
        if run.kind != PRETRAIN:
            rows += rows_from_summary(layout.summary(run), names, file_ending, run.method, run.labelled_subjects,
                                      run.seed, run.fold)
    write_results_csv(rows, layout.out / RESULTS_FILE)
