"""Validation curves: nnU-Net's per-epoch EMA pseudo-Dice of each run, and how many iterations a recipe needs to
reach the baseline's final value.

nnU-Net logs, every epoch, the pseudo-Dice of the validation subjects (2D patches, Dice accumulated over the
batch) and its exponential moving average (`ema_fg_dice`, the value it picks `checkpoint_best` by). The runner
reads it from each run's final checkpoint into `curves.csv` (one row per run and epoch); the report compares
each run with the baseline of the same size and seed, trained with the same schedule.
"""

from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from statistics import median
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from nnunet_ssp.benchmark.grid import BASELINE
from nnunet_ssp.benchmark.results import parse_csv, write_csv
from nnunet_ssp.checkpoint import load_checkpoint
from nnunet_ssp.errors import InputError
from nnunet_ssp.variants import ITERATIONS_TOKEN, find_token

CURVES_FILE = "curves.csv"
NNUNET_ITERATIONS_PER_EPOCH = 250  # nnUNetTrainer.num_iterations_per_epoch


@dataclass(frozen=True)
class CurvePoint:
    """The EMA pseudo-Dice on the validation subjects of one run after one epoch."""
    method: str
    labeled_subjects: int
    seed: int
    fold: int
    epoch: int
    iterations: int  # training iterations done by the end of this epoch
    ema_pseudo_dice: float


COLUMNS = tuple(f.name for f in fields(CurvePoint))


@dataclass(frozen=True)
class Catchup:
    """How many iterations a recipe needed to reach the baseline's final EMA pseudo-Dice at one size."""
    method: str
    labeled_subjects: int
    seeds: int  # seeds with both curves
    reached: int  # seeds in which the recipe reached the baseline's final value
    median_iterations: Optional[float]  # over the seeds that reached it
    baseline_iterations: int  # the baseline's own number of iterations


def iterations_per_epoch(trainer: str) -> int:
    """Iterations per epoch of a trainer named with an `_<I>iters` token, else nnU-Net's 250."""
    match = find_token(trainer, ITERATIONS_TOKEN)
    return int(match[1]) if match else NNUNET_ITERATIONS_PER_EPOCH


def validation_curve(checkpoint: Path) -> List[float]:
    """The EMA pseudo-Dice after each epoch, from the log nnU-Net keeps in a checkpoint (loaded weights_only)."""
    try:
        return list(_logged_curve(str(checkpoint), Path(checkpoint).stat().st_mtime_ns))
    except (OSError, InputError, KeyError, TypeError, ValueError) as e:
        raise InputError(f"{checkpoint} holds no readable nnU-Net training log ({type(e).__name__}).") from None


@lru_cache(maxsize=None)
def _logged_curve(checkpoint: str, mtime_ns: int) -> Tuple[float, ...]:
    """`validation_curve` of one version of a file: the runner rewrites curves.csv after every run of a grid, and
    loads each checkpoint only once."""
    logged = load_checkpoint(checkpoint)["logging"]["ema_fg_dice"]
    return tuple(float(v) for v in logged)


def curve_points(checkpoint: Path, trainer: str, method: str, labeled_subjects: int, seed: int,
                 fold: int) -> List[CurvePoint]:
    """The rows of one run for curves.csv."""
    per_epoch = iterations_per_epoch(trainer)
    return [CurvePoint(method, labeled_subjects, seed, fold, epoch, (epoch + 1) * per_epoch, value)
            for epoch, value in enumerate(validation_curve(checkpoint))]


def write_curves_csv(points: Iterable[CurvePoint], path: Path) -> None:
    """Write `points` to `path` atomically."""
    write_csv(points, COLUMNS, path)


def read_curves_csv(path: Path) -> List[CurvePoint]:
    """The points of a curves.csv; InputError naming the file and line when one is malformed."""
    return parse_csv(path, COLUMNS, _curve_point)


def _curve_point(values: List[str]) -> CurvePoint:
    method, *numbers, value = values
    return CurvePoint(method, *map(int, numbers), float(value))


def catchup(points: Sequence[CurvePoint]) -> List[Catchup]:
    """Per recipe and size: in how many seeds, and after how many iterations (median), the recipe's EMA
    pseudo-Dice first reached the final value of the baseline of the same size and seed."""
    curves: Dict[Tuple[str, int, int], List[CurvePoint]] = {}
    for p in sorted(points, key=lambda p: p.epoch):
        curves.setdefault((p.method, p.labeled_subjects, p.seed), []).append(p)
    # (recipe, size) -> per seed with a baseline: (iterations to the baseline's final value or None, its budget)
    outcomes: Dict[Tuple[str, int], List[Tuple[Optional[int], int]]] = {}
    for (method, size, seed), curve in curves.items():
        baseline = curves.get((BASELINE, size, seed))
        if method != BASELINE and baseline:
            first = next((p.iterations for p in curve if p.ema_pseudo_dice >= baseline[-1].ema_pseudo_dice), None)
            outcomes.setdefault((method, size), []).append((first, baseline[-1].iterations))
    result = []
    for method in dict.fromkeys(p.method for p in points):
        for size in sorted({p.labeled_subjects for p in points}):
            if (method, size) in outcomes:
                needed = [first for first, _ in outcomes[method, size] if first is not None]
                result.append(Catchup(method, size, len(outcomes[method, size]), len(needed),
                                      median(needed) if needed else None, outcomes[method, size][-1][1]))
    return result


def render_catchup(rows: Sequence[Catchup]) -> List[str]:
    """The report's Markdown section on iterations to the baseline."""
    lines = ["## Iterations to the baseline's final validation Dice", "",
             "nnU-Net's EMA pseudo-Dice on the validation subjects, logged every epoch: per seed, the first "
             "iteration count at which a recipe reaches the baseline's final value at the same size and seed. "
             "Cells: median over the seeds that reached it (seeds reached / seeds); the baseline trains for the "
             "iterations in the header.", ""]
    sizes = sorted({r.labeled_subjects for r in rows})
    budget = {r.labeled_subjects: r.baseline_iterations for r in rows}
    lines += ["| method | " + " | ".join(f"{n} labeled ({budget[n]} it.)" for n in sizes) + " |",
              "|---|" + "---|" * len(sizes)]
    by_key = {(r.method, r.labeled_subjects): r for r in rows}
    for method in dict.fromkeys(r.method for r in rows):
        cells = []
        for n in sizes:
            r = by_key.get((method, n))
            cells.append("–" if r is None else
                         f"{'never' if r.median_iterations is None else f'{r.median_iterations:g}'} "
                         f"({r.reached}/{r.seeds})")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines + [""]
