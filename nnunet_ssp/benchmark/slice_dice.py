"""Dice per 2D slice of the test predictions against the slice's base-to-apex position: slices.csv, and the report's
section and plot on where along the heart a recipe helps.

For each finished run, test case and structure, the Dice of every slice of nnU-Net's prediction against the label
map, 2 |P ∩ R| / (|P| + |R|) (NaN where the structure is in neither, as in nnU-Net's evaluation), with the slice's
position (i + 0.5) / N from base (0) to apex (1), ordered by the label file's geometry (`nnunet_ssp.positions`) and
turned round when the dataset's pool was prepared with --flip-base-apex, as pretraining does.
The report takes per slice the mean over its structures, bins the positions into thirds (base, mid, apex), and
compares each recipe with the baseline of the same size, paired over (seed, test case, slice).
"""

import math
from collections import defaultdict
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from nnunet_ssp.atomic import atomic_path
from nnunet_ssp.benchmark.grid import BASELINE
from nnunet_ssp.benchmark.results import parse_csv, write_csv
from nnunet_ssp.errors import InputError
from nnunet_ssp.labels import LabelKey
from nnunet_ssp.positions import normalised_positions, runs_base_to_apex, slice_axis_direction

SLICES_FILE = "slices.csv"
SLICE_PLOT_FILE = "dice_per_slice.png"
BINS = ("base", "mid", "apex")  # thirds of the base-to-apex position


@dataclass(frozen=True)
class SliceDice:
    """The Dice of one structure in one 2D slice of a test case, predicted by one run."""
    method: str
    labeled_subjects: int
    seed: int
    fold: int
    case: str
    slice_index: int  # along the file's slice axis (numpy axis 0)
    position: float  # (i + 0.5) / N from base (0) to apex (1)
    structure: str
    dice: float


COLUMNS = tuple(f.name for f in fields(SliceDice))


@dataclass(frozen=True)
class BinStats:
    """The per-slice Dice (mean of structures) of one recipe and size in one position bin, and its difference to
    the baseline over the slices both have."""
    method: str
    labeled_subjects: int
    bin: str
    mean: float
    sd: float
    n: int
    mean_difference: Optional[float]  # recipe − baseline over the paired slices; None for the baseline
    n_pairs: int


def slice_dice(reference: np.ndarray, prediction: np.ndarray, value: LabelKey) -> np.ndarray:
    """Dice of the structure `value` (a label, or a tuple of labels for a region) in each slice of the (z, y, x)
    maps; NaN where neither holds it."""
    values = list(value) if isinstance(value, tuple) else [value]
    ref, pred = np.isin(reference, values), np.isin(prediction, values)
    overlap = (ref & pred).sum(axis=(1, 2)).astype(float)
    total = (ref.sum(axis=(1, 2)) + pred.sum(axis=(1, 2))).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 2 * overlap / total, math.nan)


def slice_positions(image: sitk.Image, flip_base_apex: bool = False) -> np.ndarray:
    """Base-to-apex position of each slice of a 3D image (slices along its last ITK axis, numpy axis 0), turned
    round with `flip_base_apex`."""
    direction = slice_axis_direction({"sitk_stuff": {"direction": image.GetDirection()}}, (0, 1, 2))
    return normalised_positions(image.GetSize()[2], runs_base_to_apex(direction, flip_base_apex))


def position_bin(position: float) -> str:
    """base, mid or apex: the third of the heart a position lies in."""
    return BINS[min(int(position * len(BINS)), len(BINS) - 1)]


def case_slice_dice(label_file: Path, prediction_file: Path, names: Dict[LabelKey, str], method: str,
                    labeled_subjects: int, seed: int, fold: int, case: str,
                    flip_base_apex: bool = False) -> List[SliceDice]:
    """The rows of one test case: every slice and structure."""
    label = sitk.ReadImage(str(label_file))
    reference, prediction = (sitk.GetArrayFromImage(image) for image in (label, sitk.ReadImage(str(prediction_file))))
    if reference.shape != prediction.shape:
        raise InputError(f"{prediction_file} has shape {prediction.shape}, but its label {label_file} has "
                         f"{reference.shape}.")
    positions = slice_positions(label, flip_base_apex)
    rows = []
    for value, structure in names.items():
        for index, dice in enumerate(slice_dice(reference, prediction, value)):
            rows.append(SliceDice(method, labeled_subjects, seed, fold, case, index, float(positions[index]),
                                  structure, float(dice)))
    return rows


def run_slice_dice(predictions: Path, labels: Path, file_ending: str, names: Dict[LabelKey, str], method: str,
                   labeled_subjects: int, seed: int, fold: int, flip_base_apex: bool = False) -> List[SliceDice]:
    """The rows of one run, from its prediction files and the test labels; none when its predictions are gone."""
    if not predictions.is_dir():
        return []
    return list(_cached_run_slice_dice(str(predictions), predictions.stat().st_mtime_ns, str(labels), file_ending,
                                       tuple(names.items()), method, labeled_subjects, seed, fold, flip_base_apex))


@lru_cache(maxsize=None)
def _cached_run_slice_dice(predictions: str, mtime_ns: int, labels: str, file_ending: str,
                           names: Tuple[Tuple[LabelKey, str], ...], method: str, labeled_subjects: int, seed: int,
                           fold: int, flip_base_apex: bool) -> Tuple[SliceDice, ...]:
    """`run_slice_dice` of one version of a predictions folder: the runner rewrites slices.csv after every run of
    a grid, and reads each run's predictions only once."""
    rows = []
    for prediction in sorted(Path(predictions).glob(f"*{file_ending}")):
        case = prediction.name[:-len(file_ending)]
        label = Path(labels) / prediction.name
        if label.is_file():
            rows += case_slice_dice(label, prediction, dict(names), method, labeled_subjects, seed, fold, case,
                                    flip_base_apex)
    return tuple(rows)


def write_slices_csv(rows: Iterable[SliceDice], path: Path) -> None:
    """Write `rows` to `path` atomically."""
    write_csv(rows, COLUMNS, path)


def read_slices_csv(path: Path) -> List[SliceDice]:
    """The rows of a slices.csv; InputError naming the file and line when one is malformed."""
    return parse_csv(path, COLUMNS, _slice_dice)


def _slice_dice(values: List[str]) -> SliceDice:
    method, size, seed, fold, case, index, position, structure, dice = values
    return SliceDice(method, int(size), int(seed), int(fold), case, int(index), float(position), structure,
                     float(dice))


def bin_stats(rows: Sequence[SliceDice]) -> List[BinStats]:
    """Per recipe, size and position bin: mean ± sd of the per-slice mean of structures, and the mean difference
    to the baseline over (seed, test case, slice)."""
    per_slice: Dict[Tuple[str, int, int, str, int], List[float]] = defaultdict(list)
    positions = {}
    for r in rows:
        key = (r.method, r.labeled_subjects, r.seed, r.case, r.slice_index)
        positions[key] = r.position
        if not math.isnan(r.dice):
            per_slice[key].append(r.dice)
    groups: Dict[Tuple[str, int, str], Dict[Tuple[int, str, int], float]] = defaultdict(dict)
    for (method, size, seed, case, index), values in per_slice.items():
        if values:
            bin_name = position_bin(positions[method, size, seed, case, index])
            groups[method, size, bin_name][seed, case, index] = float(np.mean(values))
    methods = sorted(dict.fromkeys(r.method for r in rows), key=lambda m: m != BASELINE)
    stats = []
    for method in methods:
        for size in sorted({r.labeled_subjects for r in rows}):
            for bin_name in BINS:
                values = groups.get((method, size, bin_name))
                if not values:
                    continue
                difference, n_pairs = None, 0
                if method != BASELINE:
                    baseline = groups.get((BASELINE, size, bin_name), {})
                    pairs = [(v, baseline[k]) for k, v in values.items() if k in baseline]
                    n_pairs = len(pairs)
                    difference = float(np.mean([a - b for a, b in pairs])) if pairs else None
                data = list(values.values())
                sd = float(np.std(data, ddof=1)) if len(data) > 1 else math.nan
                stats.append(BinStats(method, size, bin_name, float(np.mean(data)), sd, len(data), difference,
                                      n_pairs))
    return stats


def render_bin_stats(stats: Sequence[BinStats], source: str, plot_name: str) -> List[str]:
    """The report's Markdown section on Dice per slice from base to apex."""
    lines = ["## Dice per slice from base to apex", "",
             f"2D Dice of each slice of the test predictions (`{source}`), the mean over the structures present in "
             f"reference or prediction; slices binned by position (i + 0.5) / N from base to apex into thirds. "
             f"Cells: mean ± sd over seeds x test cases x slices (n slices); Δ: recipe − baseline over the same seed, "
             f"test case and slice (pairs).", "", f"![Dice per slice from base to apex]({plot_name})", "",
             "| method | labeled subjects | " + " | ".join(BINS) + " |", "|---|---|" + "---|" * len(BINS)]
    by_key = {(s.method, s.labeled_subjects, s.bin): s for s in stats}
    for method in dict.fromkeys(s.method for s in stats):
        for size in sorted({s.labeled_subjects for s in stats if s.method == method}):
            cells = [_cell(by_key.get((method, size, b))) for b in BINS]
            lines.append(f"| {method} | {size} | " + " | ".join(cells) + " |")
    return lines + [""]


def _cell(stat: Optional[BinStats]) -> str:
    if stat is None:
        return "–"
    sd = "–" if math.isnan(stat.sd) else f"{stat.sd:.3f}"
    text = f"{stat.mean:.3f} ± {sd} (n={stat.n})"
    if stat.mean_difference is not None:
        text += f", Δ {stat.mean_difference:+.3f} ({stat.n_pairs} pairs)"
    return text


def plot_bin_stats(stats: Sequence[BinStats], path: Path) -> None:
    """Mean per-slice Dice per position bin, a panel per number of labeled subjects and a line per recipe."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nnunet_ssp.benchmark.report import line_styles

    sizes = sorted({s.labeled_subjects for s in stats})
    methods = list(dict.fromkeys(s.method for s in stats))
    by_key = {(s.method, s.labeled_subjects, s.bin): s for s in stats}
    fig, axes = plt.subplots(1, len(sizes), figsize=(3.2 * len(sizes) + 2, 3.6), sharey=True, squeeze=False)
    for ax, size in zip(axes[0], sizes):
        for method, style in zip(methods, line_styles(methods)):
            points = [(k, by_key[method, size, b].mean) for k, b in enumerate(BINS) if (method, size, b) in by_key]
            if points:
                x, y = zip(*points)
                ax.plot(x, y, label=method, **style)
        ax.set_xticks(range(len(BINS)), BINS)
        ax.set_title(f"{size} labeled")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("2D Dice per slice, mean of structures")
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize="small")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
