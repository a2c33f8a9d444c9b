"""The speed benchmark's results: per-trainer measurements, ratios against nnU-Net's supervised step, targets, table.

Images are counted as the batch's slices, whatever number of views a method makes of each slice. Ratios of step
times are medians over rounds of the per-round ratio (both steps timed in the same round); the loader ratio is the
loader's batches per second times the median step seconds; memory ratios compare peaks of the process.
"""

from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

import numpy as np

from nnunet_ssp.speed.passes import SUPERVISED

# (ratio key, comparison, limit, what it means): checked for every SSP trainer; `only` limits one to a method.
TARGETS = (
    ("step_vs_bare", "<=", 1.10, None, "SSP step at most 1.10x its bare network passes"),
    ("images_per_second_vs_supervised", ">=", 0.95, "mim", "MIM at least 0.95x the supervised images per second"),
    ("loader_vs_step", ">=", 1.5, None, "loader at least 1.5x faster than the model step"),
    ("memory_vs_supervised", "<=", 1.2, None, "peak memory at most 1.2x the supervised peak"),
)


def _median(values: List[float]) -> float:
    return float(np.median(values))


def _paired(numerators: List[float], denominators: List[float]) -> float:
    """Median of the per-round ratios."""
    return float(np.median(np.asarray(numerators) / np.asarray(denominators)))


@dataclass
class TrainerResult:
    """What was measured of one trainer; seconds are per step and round, memory in MiB."""

    trainer: str
    method: str
    views: str
    batch_size: int
    patch_size: List[int]
    data_workers: int
    loader_batches_per_second: float
    loader_cpu_seconds_per_batch: float
    live_data_wait_share: float
    added_rss_mib: Optional[float]
    cuda_peak_mib: Optional[float]
    peak_rss_mib: Optional[float] = None
    step_wall: List[float] = field(default_factory=list)
    step_cpu: List[float] = field(default_factory=list)
    bare_wall: List[float] = field(default_factory=list)
    bare_cpu: List[float] = field(default_factory=list)

    def summary(self) -> dict:
        """Medians and derived rates (what the table shows)."""
        step = _median(self.step_wall)
        return {"step_seconds": step, "step_cpu_seconds": _median(self.step_cpu),
                "bare_seconds": _median(self.bare_wall), "bare_cpu_seconds": _median(self.bare_cpu),
                "images_per_second": self.batch_size / step,
                "loader_batches_per_second": self.loader_batches_per_second,
                "loader_cpu_seconds_per_batch": self.loader_cpu_seconds_per_batch,
                "live_data_wait_share": self.live_data_wait_share, "peak_rss_mib": self.peak_rss_mib,
                "added_rss_mib": self.added_rss_mib, "cuda_peak_mib": self.cuda_peak_mib}


@dataclass
class SpeedReport:
    """All measurements of one benchmark run, with the machine it ran on."""

    machine: dict
    settings: dict
    trainers: List[TrainerResult]
    prepare_unlabeled: Optional[dict] = None

    def __post_init__(self) -> None:
        idle = self.settings.get("idle_rss_mib")
        for t in self.trainers:
            t.peak_rss_mib = None if idle is None or t.added_rss_mib is None else idle + t.added_rss_mib

    @property
    def supervised(self) -> TrainerResult:
        return next(t for t in self.trainers if t.method == SUPERVISED)

    def trainer_ratios(self, t: TrainerResult) -> Dict[str, float]:
        """Ratios of one trainer against its bare passes, its loader and the supervised trainer."""
        sup = self.supervised
        ratios = {"images_per_second_vs_supervised": _paired(sup.step_wall, t.step_wall),
                  "images_per_second_vs_supervised_cpu": _paired(sup.step_cpu, t.step_cpu),
                  "step_vs_bare": _paired(t.step_wall, t.bare_wall),
                  "step_vs_bare_cpu": _paired(t.step_cpu, t.bare_cpu),
                  "loader_vs_step": t.loader_batches_per_second * _median(t.step_wall),
                  "loader_vs_step_cpu": _median(t.step_cpu) * max(1, t.data_workers) / t.loader_cpu_seconds_per_batch}
        if t.peak_rss_mib is not None and sup.peak_rss_mib:
            ratios["memory_vs_supervised"] = t.peak_rss_mib / sup.peak_rss_mib
            ratios["added_memory_vs_supervised"] = t.added_rss_mib / sup.added_rss_mib
        if t.cuda_peak_mib is not None and sup.cuda_peak_mib:
            ratios["cuda_memory_vs_supervised"] = t.cuda_peak_mib / sup.cuda_peak_mib
        return ratios

    def ratios(self) -> Dict[str, object]:
        """Every ratio, by trainer, plus prepare-unlabeled's frames per second over nnUNetv2_preprocess's."""
        ratios: Dict[str, object] = {t.trainer: self.trainer_ratios(t) for t in self.trainers}
        if self.prepare_unlabeled is not None:
            ratios["prepare_unlabeled_vs_nnUNetv2_preprocess"] = self.prepare_unlabeled["speed_ratio_wall"]
            ratios["prepare_unlabeled_vs_nnUNetv2_preprocess_cpu"] = self.prepare_unlabeled["speed_ratio_cpu"]
        return ratios

    def targets(self) -> List[dict]:
        """Each target checked on each SSP trainer it applies to."""
        checks = []
        for t in self.trainers:
            if t.method == SUPERVISED:
                continue
            ratios = self.trainer_ratios(t)
            for key, comparison, limit, only, meaning in TARGETS:
                if self.settings["clock"] == "cpu" and f"{key}_cpu" in ratios:
                    key = f"{key}_cpu"
                if key in ratios and only in (None, t.method):
                    value = ratios[key]
                    met = value <= limit if comparison == "<=" else value >= limit
                    checks.append({"trainer": t.trainer, "ratio": key, "value": round(value, 3),
                                   "target": f"{comparison} {limit}", "met": bool(met), "meaning": meaning})
        return checks

    def to_dict(self) -> dict:
        """The JSON form: machine, settings, per-trainer medians and samples, ratios, targets, prepare-unlabeled."""
        return {"machine": self.machine, "settings": self.settings,
                "trainers": {t.trainer: {**asdict(t), **t.summary()} for t in self.trainers},
                "ratios": self.ratios(), "targets": self.targets(), "prepare_unlabeled": self.prepare_unlabeled}

    def table(self) -> str:
        """A readable table of the measurements and ratios, with the machine, the notes and the targets."""
        return "\n".join([*self._title(), "", *_aligned(self._rows()), "", *self._notes(), "", "targets:",
                          *(f"  {'met   ' if c['met'] else 'MISSED'}  {c['trainer']}: {c['ratio']} = {c['value']} "
                            f"(target {c['target']})" for c in self.targets())])

    def _title(self) -> List[str]:
        m, s, sup = self.machine, self.settings, self.supervised
        return [f"Training-step speed, {s['dataset']} {s['configuration']} {s['plans']} fold {s['fold']}, device "
                f"{m['device']}, batch {sup.batch_size} slices of {'x'.join(map(str, sup.patch_size))}",
                f"machine: {m['cpu_model']}, {m['cores']} cores, torch {m['torch']}, torch threads "
                f"{m['torch_threads']}; load average {m['load_average_start'][0]} at start, "
                f"{m['load_average_end'][0]} at end",
                f"{s['steps']} interleaved rounds after {s['warmup']} warm-up steps; images = slices of the batch "
                f"(views per slice as listed); ratios = medians of per-round ratios, wall/CPU time; targets judged "
                f"on {s['clock']} time"]

    def _rows(self) -> List[tuple]:
        rows = [("trainer", "views/slice", "step s", "CPU s", "img/s", "x sup", "bare s", "step/bare", "loader b/s",
                 "loader/step", "data wait", "peak MiB", "x sup")]
        for t in self.trainers:
            v, r = t.summary(), self.trainer_ratios(t)
            rows.append((t.trainer, t.views, f"{v['step_seconds']:.3f}", f"{v['step_cpu_seconds']:.3f}",
                         f"{v['images_per_second']:.1f}", _pair(r, "images_per_second_vs_supervised"),
                         f"{v['bare_seconds']:.3f}", _pair(r, "step_vs_bare"), f"{t.loader_batches_per_second:.1f}",
                         _pair(r, "loader_vs_step"), f"{100 * t.live_data_wait_share:.0f} %",
                         _number(t.peak_rss_mib, ".0f"), _number(r.get("memory_vs_supervised"), ".2f")))
        return rows

    def _notes(self) -> List[str]:
        notes = [f"loader: {self.supervised.data_workers} worker processes (nnU-Net's default); loader/step CPU = "
                 "step CPU s x workers / loader CPU s per batch; data wait = share of nnU-Net's loop (next batch + "
                 "train_step) spent waiting; peak MiB = idle process + what the trainer added (idle "
                 f"{_number(self.settings.get('idle_rss_mib'), '.0f')} MiB)"]
        p = self.prepare_unlabeled
        if p is not None:
            fps = p["frames_per_second"]
            notes.append(f"prepare-unlabeled: {fps['prepare-unlabeled']} frames/s against nnUNetv2_preprocess "
                         f"{fps['nnUNetv2_preprocess']} frames/s on the same {p['frames']} frames "
                         f"({p['num_processes']} processes): x{p['speed_ratio_wall']} wall, "
                         f"x{p['speed_ratio_cpu']} CPU")
        return notes


def _aligned(rows: List[tuple]) -> List[str]:
    """Rows as lines of columns: the first two left-aligned, the numbers right-aligned."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
            for row in rows]


def _pair(ratios: Dict[str, float], key: str) -> str:
    """A ratio on wall time and on CPU time, as 'wall/CPU'."""
    return f"{ratios[key]:.2f}/{ratios[key + '_cpu']:.2f}"


def _number(value: Optional[float], spec: str) -> str:
    return "n/a" if value is None else format(value, spec)
