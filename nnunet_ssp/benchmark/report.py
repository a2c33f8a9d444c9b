"""The label-efficiency report, computed from results.csv (and curves.csv when it is beside it): report.md and
dice_vs_subjects.png beside it.

- Mean ± sd of 3D Dice per method and number of labeled subjects, per structure and for the mean of structures
  (per run and test case the mean over its structures, then mean ± sd over seeds x test cases); sd with ddof 1.
- Paired two-sided Wilcoxon signed-rank test (scipy) of each method against the baseline, per size and structure,
  paired over (seed, test case); pairs with a NaN Dice on either side are left out.
- Per seed (the mean of structures over the test cases): each recipe's difference to the baseline of the same seed
  and a sign-flip permutation test over seeds (seed_tests.py).
- From curves.csv: the iterations each recipe needs to reach the baseline's final validation pseudo-Dice.
- From slices.csv: 2D Dice per slice in the base, mid and apex thirds, against the baseline (slice_dice.py), and
  dice_per_slice.png.
"""

import json
import math
import re
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from nnunet_ssp.atomic import atomic_path, write_text
from nnunet_ssp.benchmark.curves import CURVES_FILE, catchup, read_curves_csv, render_catchup
from nnunet_ssp.benchmark.grid import BASELINE
from nnunet_ssp.benchmark.results import ResultRow, read_results_csv
from nnunet_ssp.benchmark.seed_tests import SeedTest, seed_tests
from nnunet_ssp.benchmark.slice_dice import (SLICE_PLOT_FILE, SLICES_FILE, BinStats, bin_stats, plot_bin_stats,
                                             read_slices_csv, render_bin_stats)
from nnunet_ssp.errors import InputError

MEAN_OF_STRUCTURES = "mean of structures"
REPORT_FILE = "report.md"
PLOT_FILE = "dice_vs_subjects.png"
SETTINGS_FILE = "benchmark.json"  # written by the runner; the report takes the command line from it


@dataclass(frozen=True)
class DiceStats:
    """Mean and sd of the Dice of one method, size and structure over seeds x test cases."""
    method: str
    labeled_subjects: int
    structure: str
    mean: float
    sd: float
    n: int


@dataclass(frozen=True)
class PairedTest:
    """A method against the baseline at one size and structure, paired over (seed, test case)."""
    method: str
    labeled_subjects: int
    structure: str
    n_pairs: int
    mean_difference: float
    p_value: float


@dataclass(frozen=True)
class BenchmarkReport:
    """The numbers of a report and the files written."""
    stats: List[DiceStats]
    tests: List[PairedTest]
    seed_tests: List[SeedTest]  # of the mean of structures
    report_file: Path
    plot_file: Path
    slice_stats: List[BinStats] = field(default_factory=list)  # from slices.csv, when it is there


def with_structure_means(rows: Sequence[ResultRow]) -> List[ResultRow]:
    """`rows` plus, per run and test case, a row of the mean Dice over its structures (NaN ones left out)."""
    per_case = defaultdict(list)
    for row in rows:
        per_case[row.method, row.labeled_subjects, row.seed, row.fold, row.case].append(row.dice)
    means = [ResultRow(*key, MEAN_OF_STRUCTURES, _nanmean(values)) for key, values in per_case.items()]
    return list(rows) + means


def dice_stats(rows: Sequence[ResultRow]) -> List[DiceStats]:
    """Mean ± sd per (method, labeled subjects, structure), in the order methods and structures first appear."""
    groups = defaultdict(list)
    for row in rows:
        if not math.isnan(row.dice):
            groups[row.method, row.labeled_subjects, row.structure].append(row.dice)
    stats = []
    for method in _methods(rows):
        for size in _sizes(rows):
            for structure in _structures(rows):
                values = groups.get((method, size, structure))
                if values:
                    sd = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
                    stats.append(DiceStats(method, size, structure, float(np.mean(values)), sd, len(values)))
    return stats


def paired_tests(rows: Sequence[ResultRow]) -> List[PairedTest]:
    """The Wilcoxon signed-rank test of every method against the baseline per size and structure."""
    from scipy.stats import wilcoxon

    groups: Dict[Tuple[str, int, str], Dict[Tuple[int, str], float]] = defaultdict(dict)
    for r in rows:
        groups[r.method, r.labeled_subjects, r.structure][r.seed, r.case] = r.dice
    methods = _methods(rows)
    if BASELINE not in methods:
        return []
    tests = []
    for method in methods[1:]:
        for size in _sizes(rows):
            for structure in _structures(rows):
                baseline = groups.get((BASELINE, size, structure), {})
                pairs = [(value, baseline.get(pair, math.nan))
                         for pair, value in groups.get((method, size, structure), {}).items()]
                pairs = [(a, b) for a, b in pairs if not (math.isnan(a) or math.isnan(b))]
                if not pairs:
                    continue
                ours, theirs = np.array(pairs).T
                with warnings.catch_warnings():  # scipy warns when every difference is zero
                    warnings.simplefilter("ignore", RuntimeWarning)
                    try:
                        p = float(wilcoxon(ours, theirs).pvalue)
                    except ValueError:
                        p = math.nan
                tests.append(PairedTest(method, size, structure, len(pairs), float(np.mean(ours - theirs)), p))
    return tests


def report_from_csv(results_csv: Path, command: Optional[str] = None) -> BenchmarkReport:
    """Write report.md and dice_vs_subjects.png beside `results_csv`, from its rows alone.

    The command line shown is `command`, else the one recorded in benchmark.json beside the CSV, if any.
    """
    results_csv = Path(results_csv)
    rows = read_results_csv(results_csv)
    if not rows:
        raise InputError(f"{results_csv} holds no results yet.")
    if command is None:
        command = _recorded_command(results_csv.parent / SETTINGS_FILE)
    if command is not None:
        command = relative_to_folder(command, results_csv.parent)
    rows = with_structure_means(rows)
    stats, tests, per_seed = dice_stats(rows), paired_tests(rows), seed_tests(rows, MEAN_OF_STRUCTURES)
    curves_csv = results_csv.parent / CURVES_FILE
    catchups = catchup(read_curves_csv(curves_csv)) if curves_csv.is_file() else []
    report_file, plot_file = results_csv.parent / REPORT_FILE, results_csv.parent / PLOT_FILE
    markdown = render_markdown(stats, tests, results_csv.name, command, plot_file.name)
    markdown += "\n" + "\n".join(render_seed_tests(per_seed, MEAN_OF_STRUCTURES))
    if catchups:
        markdown += "\n" + "\n".join(render_catchup(catchups))
    slices_csv = results_csv.parent / SLICES_FILE
    per_bin = bin_stats(read_slices_csv(slices_csv)) if slices_csv.is_file() else []
    if per_bin:
        markdown += "\n" + "\n".join(render_bin_stats(per_bin, slices_csv.name, SLICE_PLOT_FILE))
        plot_bin_stats(per_bin, results_csv.parent / SLICE_PLOT_FILE)
    write_text(markdown, report_file)
    plot_dice_vs_subjects(stats, plot_file)
    return BenchmarkReport(stats, tests, per_seed, report_file, plot_file, per_bin)


def render_markdown(stats: Sequence[DiceStats], tests: Sequence[PairedTest], source: str, command: Optional[str],
                    plot_name: str) -> str:
    """The report as Markdown."""
    sizes = sorted({s.labeled_subjects for s in stats})
    structures = list(dict.fromkeys(s.structure for s in stats))
    structures = [MEAN_OF_STRUCTURES] + [s for s in structures if s != MEAN_OF_STRUCTURES]
    by_key = {(s.method, s.labeled_subjects, s.structure): s for s in stats}
    lines = ["# Label-efficiency benchmark", "",
             f"Command: `{command}`" if command else "Command: not recorded.", "",
             f"3D Dice per test case from nnU-Net's evaluation, recomputed from `{source}` by "
             f"`nnunet_ssp.benchmark.report_from_csv`. Cells: mean ± sd over seeds x test cases (n values). "
             f"`{BASELINE}` is nnU-Net trained from its own initialisation with the same schedule.", "",
             f"![Dice against labeled subjects]({plot_name})", ""]
    for structure in structures:
        lines += [f"## {structure}", "", "| method | " + " | ".join(f"{n} labeled" for n in sizes) + " |",
                  "|---|" + "---|" * len(sizes)]
        for method in dict.fromkeys(s.method for s in stats):
            cells = [_cell(by_key.get((method, n, structure))) for n in sizes]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Paired Wilcoxon signed-rank test against the baseline", "",
              "Two-sided, scipy.stats.wilcoxon, pairs: the same seed and test case; Δ = mean Dice difference "
              "method − baseline over the pairs.", ""]
    if tests:
        lines += ["| method | labeled subjects | structure | pairs | Δ Dice | p |", "|---|---|---|---|---|---|"]
        order = {s: i for i, s in enumerate(structures)}
        for t in sorted(tests, key=lambda t: (t.labeled_subjects, order[t.structure])):
            lines.append(f"| {t.method} | {t.labeled_subjects} | {t.structure} | {t.n_pairs} | "
                         f"{t.mean_difference:+.3f} | {_format_p(t.p_value)} |")
    else:
        lines.append("No pairs: the results hold no baseline and method rows with the same seed and test case.")
    return "\n".join(lines) + "\n"


def render_seed_tests(tests: Sequence[SeedTest], structure: str) -> List[str]:
    """The report's Markdown section on the per-seed comparison."""
    lines = ["## Per seed against the baseline", "",
             f"{structure}: per seed the mean over the test cases, recipe − baseline of the same seed. p: two-sided "
             "sign-flip permutation test of the mean over seeds (scipy.stats.permutation_test); it treats each "
             "training as one sample, so it is the test to trust when runs scatter, and with k seeds it cannot go "
             "below 2 / 2^k.", ""]
    if not tests:
        return lines + ["No seed has both the baseline and a recipe.", ""]
    lines += ["| method | labeled subjects | seeds | Δ per seed | mean Δ | seeds above | p |",
              "|---|---|---|---|---|---|---|"]
    for t in sorted(tests, key=lambda t: t.labeled_subjects):
        per_seed = ", ".join(f"{d:+.3f}" for d in t.differences)
        lines.append(f"| {t.method} | {t.labeled_subjects} | {len(t.seeds)} | {per_seed} | "
                     f"{t.mean_difference:+.3f} | {t.seeds_above}/{len(t.seeds)} | {_format_p(t.p_value)} |")
    return lines + [""]


def plot_dice_vs_subjects(stats: Sequence[DiceStats], path: Path) -> None:
    """Mean Dice of the structures against labeled subjects, a line per method with ± sd bars; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves: Dict[str, List[Tuple[int, float, float]]] = defaultdict(list)
    for s in stats:
        if s.structure == MEAN_OF_STRUCTURES:
            curves[s.method].append((s.labeled_subjects, s.mean, 0.0 if math.isnan(s.sd) else s.sd))
    fig, ax = plt.subplots(figsize=(8, 4))
    for i, ((method, points), style) in enumerate(zip(curves.items(), line_styles(list(curves)))):
        x, mean, sd = (np.array(v) for v in zip(*sorted(points)))
        dodge = 1 + 0.03 * (i - (len(curves) - 1) / 2)  # side by side on the log axis, so error bars do not hide
        ax.errorbar(x * dodge, mean, yerr=sd, capsize=3, label=method, **style)
    sizes = sorted({s.labeled_subjects for s in stats})
    ax.set_xscale("log")
    ax.set_xlim(min(sizes) / 1.5, max(sizes) * 1.5)
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    ax.set_xlabel("labeled subjects")
    ax.set_ylabel("3D Dice, mean of structures (± sd)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize="small")  # beside the axes: lines stay visible
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def line_styles(methods: Sequence[str]) -> List[Dict[str, object]]:
    """A colour and marker per method, no two alike up to 80 methods; the baseline black and dashed."""
    import matplotlib

    colours = matplotlib.colormaps["tab10" if len(methods) <= 10 else "tab20"].colors
    markers = "os^D"
    styles, k = [], 0
    for method in methods:
        if method == BASELINE:
            styles.append({"color": "black", "linestyle": "--", "marker": "o"})
            continue
        styles.append({"color": colours[k % len(colours)], "marker": markers[k // len(colours) % len(markers)]})
        k += 1
    return styles


def _nanmean(values: Sequence[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else math.nan


def _methods(rows: Sequence[ResultRow]) -> List[str]:
    """Methods in order of appearance, the baseline first."""
    methods = list(dict.fromkeys(r.method for r in rows))
    return sorted(methods, key=lambda m: m != BASELINE)


def _sizes(rows: Sequence[ResultRow]) -> List[int]:
    return sorted({r.labeled_subjects for r in rows})


def _structures(rows: Sequence[ResultRow]) -> List[str]:
    return list(dict.fromkeys(r.structure for r in rows))


def _cell(stat: Optional[DiceStats]) -> str:
    if stat is None:
        return "–"
    sd = "–" if math.isnan(stat.sd) else f"{stat.sd:.3f}"
    return f"{stat.mean:.3f} ± {sd} (n={stat.n})"


def _format_p(p: float) -> str:
    return "–" if math.isnan(p) else f"{p:.3g}"


def relative_to_folder(text: str, folder: Path) -> str:
    """`text` with the absolute path of `folder` (the report's own) written as `.`, so no machine path is kept."""
    folder = Path(folder).absolute()
    for path in {str(folder.resolve()), str(folder)}:
        text = re.sub(re.escape(path) + r"(?=/|\s|'|$)", ".", text)
    return text


def _recorded_command(settings_file: Path) -> Optional[str]:
    try:
        return json.loads(settings_file.read_text())["command"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
