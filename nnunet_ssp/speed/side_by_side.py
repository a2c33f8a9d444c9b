"""Training-step speed of the SSP trainers against nnU-Net's own, measured side by side in one process.

Every trainer is built by nnU-Net's `get_trainer_from_args` on the same plans, fold and device and timed through its
real `train_step`, its bare network passes, and its data loader. Steps are timed in interleaved rounds and ratios
are medians of per-round ratios, so a change of machine load between rounds cancels out.
"""

import contextlib
import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from tqdm import tqdm

from nnunet_ssp.errors import InputError
from nnunet_ssp.methods import METHODS, method_names
from nnunet_ssp.speed.measure import PeakMemory, cpu_model, load_average, process_cpu_seconds, resident_mib, timed
from nnunet_ssp.speed.passes import NetworkPasses, method_of, network_passes
from nnunet_ssp.speed.report import SpeedReport, TrainerResult

SUPERVISED_TRAINER = "nnUNetTrainer"
KEPT_BATCHES = 2
CLOCKS = ("wall", "cpu")


@dataclass
class SpeedSettings:
    """What to measure and how long."""

    dataset: str
    configuration: str = "2d"
    plans: str = "nnUNetPlans"
    device: str = "cpu"
    threads: Optional[int] = None
    clock: str = "wall"
    methods: Sequence[str] = field(default_factory=lambda: tuple(method_names()))
    steps: int = 30
    warmup: int = 3
    loader_batches: int = 20
    prepare: bool = True
    cines: Optional[Path] = None
    prepare_processes: int = 2
    prepare_repeats: int = 2

    def check(self) -> None:
        """Refuse settings that cannot give a measurement: unknown methods, counts below 1, missing plans."""
        from nnunet_ssp.architectures import check_dataset_plans
        from nnunet_ssp.roots import dataset_name_of

        unknown = sorted(set(self.methods) - set(method_names()))
        if unknown:
            raise InputError(f"Unknown SSP methods {', '.join(unknown)}; known: {', '.join(method_names())}.")
        if self.clock not in CLOCKS:
            raise InputError(f"The clock must be one of {', '.join(CLOCKS)}, got {self.clock!r}.")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"--threads must be at least 1, got {self.threads}.")
        if min(self.steps, self.loader_batches, self.prepare_repeats, self.prepare_processes) < 1 or self.warmup < 0:
            raise InputError("--steps, --loader-batches, --prepare-repeats and -np must be at least 1 and "
                             "--warmup at least 0.")
        check_dataset_plans(dataset_name_of(self.dataset), self.plans, self.configuration)

    def prepare_cines(self) -> Optional[Path]:
        """The cines to time prepare-unlabeled on: --cines, else the input of the dataset's unlabeled pool."""
        from batchgenerators.utilities.file_and_folder_operations import load_json

        from nnunet_ssp.unlabeled import REPORT_FILE
        from nnunet_ssp.unlabeled.plans import load_pool_plans

        if not self.prepare:
            return None
        cines = self.cines
        if cines is None:
            report = load_pool_plans(self.dataset, self.plans, self.configuration).folder / REPORT_FILE
            if not report.is_file():
                raise InputError(f"{report} is missing, so the cines to time prepare-unlabeled on are unknown; pass "
                                 f"--cines DIR or --skip-prepare.")
            cines = Path(load_json(str(report))["input"])
        if not Path(cines).is_dir():
            raise InputError(f"{cines} is not a folder of cines to time prepare-unlabeled on; pass --cines DIR or "
                             f"--skip-prepare.")
        return Path(cines)


@dataclass
class _Run:
    """A built trainer, its passes, its kept batches and what was measured of it."""

    trainer: nnUNetTrainer
    passes: NetworkPasses
    batches: List[dict]
    result: TrainerResult


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep nnU-Net's console chatter (citation, split, plans) out of the benchmark's output."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield


def _on_device(batch, device: torch.device):
    """The batch with every tensor (also inside lists and dicts) moved to `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: _on_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list):
        return [_on_device(v, device) for v in batch]
    return batch


def _stop(loader) -> None:
    """Shut a multi-process augmenter's workers down (single-threaded ones have none)."""
    finish = getattr(loader, "_finish", None)
    if finish is not None:
        finish()


def _loaders(trainer: nnUNetTrainer):
    """The trainer's own training loader (its validation loader is stopped at once)."""
    train_loader, val_loader = trainer.get_dataloaders()
    _stop(val_loader)
    return train_loader


@dataclass
class _LoaderSpeed:
    batches_per_second: float
    cpu_seconds_per_batch: float
    workers: int
    batches: List[dict]


def _loader_speed(trainer: nnUNetTrainer, batches: int) -> _LoaderSpeed:
    """Speed of a fresh training loader once its caches are empty: batches per second, CPU seconds per batch (its
    workers and this process), and two of its batches to time the steps on.

    Workers fill two queues of `num_cached` batches each, and one batch is in the making per worker; those are
    drawn untimed first, so what is timed is how fast new batches are made.
    """
    loader = _loaders(trainer)
    try:
        kept = [next(loader) for _ in range(KEPT_BATCHES)]
        for _ in range(2 * getattr(loader, "num_cached", 0) + getattr(loader, "num_processes", 0)):
            next(loader)
        workers = [p.pid for p in getattr(loader, "_processes", [])]
        cpu, start = process_cpu_seconds(workers), time.perf_counter()
        for _ in range(batches):
            next(loader)
        wall, cpu = time.perf_counter() - start, process_cpu_seconds(workers) - cpu
        return _LoaderSpeed(batches / wall, cpu / batches, len(workers), kept)
    finally:
        _stop(loader)


def _live_wait_share(trainer: nnUNetTrainer, loader, iterations: int) -> float:
    """Share of nnU-Net's loop time (next batch, then train_step) spent waiting for the next batch."""
    waited = total = 0.0
    for _ in range(iterations):
        start = time.perf_counter()
        batch = next(loader)
        waited += time.perf_counter() - start
        trainer.train_step(batch)
        total += time.perf_counter() - start
    return waited / total


def _start_trainer(name: str, settings: SpeedSettings, device: torch.device) -> _Run:
    """Build `name`, train it briefly with its own loader (memory and data waits), time the loader, keep batches."""
    from nnunetv2.run.run_training import get_trainer_from_args

    with PeakMemory(device) as memory, _quiet():
        trainer = get_trainer_from_args(settings.dataset, settings.configuration, 0, name, settings.plans,
                                        device=device)
        trainer.initialize()
        train_loader = _loaders(trainer)
        try:
            for _ in range(settings.warmup):
                trainer.train_step(next(train_loader))
            wait_share = _live_wait_share(trainer, train_loader, max(1, settings.loader_batches // 2))
        finally:
            _stop(train_loader)
    with _quiet():
        loader = _loader_speed(trainer, settings.loader_batches)
    passes = network_passes(trainer)
    result = TrainerResult(
        trainer=name, method=method_of(trainer), views=passes.views(trainer), batch_size=int(trainer.batch_size),
        patch_size=[int(p) for p in trainer.configuration_manager.patch_size],
        data_workers=loader.workers, loader_batches_per_second=loader.batches_per_second,
        loader_cpu_seconds_per_batch=loader.cpu_seconds_per_batch,
        live_data_wait_share=wait_share, added_rss_mib=memory.added_mib, cuda_peak_mib=memory.cuda_peak_mib)
    return _Run(trainer, passes, [_on_device(b, device) for b in loader.batches], result)


def _time_step(run: _Run, batch: dict, device: torch.device) -> None:
    wall, cpu = timed(lambda: run.trainer.train_step(batch), device)
    run.result.step_wall.append(wall)
    run.result.step_cpu.append(cpu)


def _time_bare_passes(run: _Run, batch: dict, device: torch.device) -> None:
    inputs = run.passes.inputs(run.trainer, batch)
    run.trainer.optimizer.zero_grad(set_to_none=True)
    wall, cpu = timed(lambda: run.passes.run(run.trainer, inputs), device)
    run.result.bare_wall.append(wall)
    run.result.bare_cpu.append(cpu)


def _time_round(run: _Run, index: int, device: torch.device) -> None:
    """One timed train_step and one timed bare pass of `run`'s trainer on the same batch.

    Which of the two goes first alternates by round: the first one after another trainer finds colder caches.
    """
    batch = run.batches[index % len(run.batches)]
    pair = (_time_step, _time_bare_passes) if index % 2 == 0 else (_time_bare_passes, _time_step)
    for measure in pair:
        measure(run, batch, device)


def _prepare_speed(settings: SpeedSettings, cines: Path) -> dict:
    """prepare-unlabeled against nnUNetv2_preprocess on every frame of `cines` (nnunet_ssp.unlabeled.throughput)."""
    from nnunet_ssp.unlabeled.throughput import measure_throughput

    with tempfile.TemporaryDirectory(prefix="nnunet_ssp_speed_") as work:
        return measure_throughput(cines, Path(work), settings.prepare_processes, settings.prepare_repeats)


def _measure_trainers(runs: List[_Run], names: List[str], settings: SpeedSettings, device: torch.device,
                      bar: tqdm) -> None:
    """Start every trainer in turn (appending it to `runs`), then time steps and bare passes in interleaved rounds."""
    for name in names:
        bar.set_postfix_str(f"starting {name}")
        runs.append(_start_trainer(name, settings, device))
        bar.update()
    for index in range(settings.steps):
        bar.set_postfix_str(f"round {index + 1} of {settings.steps}")
        for run in (runs if index % 2 == 0 else runs[::-1]):
            _time_round(run, index, device)
        bar.update()


def timed_trainers(methods: Sequence[str]) -> List[str]:
    """The pretraining trainers the speed benchmark times beside nnU-Net's, of `methods`, in registry order."""
    return [m.trainer for m in METHODS.values() if m.name in methods]


def _remove_log(trainer: nnUNetTrainer) -> None:
    """Delete the log file a trainer's constructor starts, and its fold, run and dataset folders if left empty."""
    log = Path(trainer.log_file)
    log.unlink(missing_ok=True)
    for folder in (log.parent, log.parent.parent, log.parent.parent.parent):
        try:
            folder.rmdir()
        except OSError:  # not empty: a real run lives there
            return


def benchmark_speed(settings: SpeedSettings) -> SpeedReport:
    """Measure nnU-Net's supervised step, each SSP step, their bare passes, loaders and memory, and prepare-unlabeled.

    Trainers are never trained to the end, so the log files their constructors start in nnUNet_results are removed
    at the end, with the folders that leaves empty.
    """
    settings.check()
    cines = settings.prepare_cines()
    device = torch.device(settings.device)
    names = [SUPERVISED_TRAINER, *timed_trainers(settings.methods)]
    default_threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads or default_threads)
    machine = {"cpu_model": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
               "torch": torch.__version__, "device": settings.device,
               "cuda_device": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
               "load_average_start": load_average()}
    runs: List[_Run] = []
    try:
        with tqdm(total=1 + len(names) + settings.steps + (cines is not None), desc="benchmark-speed",
                  unit="stage") as bar:
            bar.set_postfix_str("warming the process up")
            # One throwaway start pays for lazy imports and library caches, so no trainer's memory includes them.
            warm_up = _start_trainer(SUPERVISED_TRAINER, replace(settings, warmup=0, loader_batches=1), device)
            _remove_log(warm_up.trainer)
            del warm_up
            idle_mib = resident_mib()
            bar.update()
            _measure_trainers(runs, names, settings, device, bar)
            prepare = None
            if cines is not None:
                bar.set_postfix_str("prepare-unlabeled against nnUNetv2_preprocess")
                prepare = _prepare_speed(settings, cines)
                bar.update()
    finally:
        torch.set_num_threads(default_threads)
        for run in runs:
            _remove_log(run.trainer)
    machine["load_average_end"] = load_average()
    run_settings = {"dataset": runs[0].trainer.plans_manager.dataset_name, "configuration": settings.configuration,
                    "plans": settings.plans, "fold": 0, "steps": settings.steps, "warmup": settings.warmup,
                    "loader_batches": settings.loader_batches, "clock": settings.clock, "idle_rss_mib": idle_mib}
    return SpeedReport(machine, run_settings, [run.result for run in runs], prepare)
