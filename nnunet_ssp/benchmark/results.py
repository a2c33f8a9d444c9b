"""results.csv: one row per run x test case x structure with nnU-Net's 3D Dice, read from its evaluation summaries.

Columns: method (`baseline` for nnU-Net from its own initialisation), labeled_subjects, seed, fold, case,
structure (the label name in dataset.json), dice. A Dice of `nan` is nnU-Net's value for a structure that is absent
from both reference and prediction; it is left out of means and tests.
"""

import csv
import math
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Sequence, Tuple, TypeVar

from nnunetv2.evaluation.evaluate_predictions import load_summary_json

from nnunet_ssp.atomic import atomic_path
from nnunet_ssp.errors import InputError
from nnunet_ssp.labels import LabelKey
from nnunet_ssp.spelling import respelled

T = TypeVar("T")


@dataclass(frozen=True)
class ResultRow:
    """The 3D Dice of one structure in one test case, predicted by one run."""
    method: str
    labeled_subjects: int
    seed: int
    fold: int
    case: str
    structure: str
    dice: float


COLUMNS = tuple(f.name for f in fields(ResultRow))


def rows_from_summary(summary_file: Path, names: Dict[LabelKey, str], file_ending: str, method: str,
                      labeled_subjects: int, seed: int, fold: int) -> List[ResultRow]:
    """The rows of one run from nnU-Net's evaluation `summary.json`."""
    rows = []
    for entry in load_summary_json(str(summary_file))["metric_per_case"]:
        case = Path(entry["reference_file"]).name[:-len(file_ending)]
        for key, metrics in entry["metrics"].items():
            rows.append(ResultRow(method, labeled_subjects, seed, fold, case, names.get(key, str(key)),
                                  float(metrics["Dice"])))
    return rows


def write_csv(rows: Iterable, columns: Sequence[str], path: Path) -> None:
    """Write dataclass `rows` under the header `columns` to `path` atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        table = csv.writer(f)
        table.writerow(columns)
        table.writerows(astuple(row) for row in rows)


def write_results_csv(rows: Iterable[ResultRow], path: Path) -> None:
    """Write `rows` to `path` atomically."""
    write_csv(rows, COLUMNS, path)


def csv_rows(path: Path, columns: Sequence[str]) -> Iterator[Tuple[int, List[str]]]:
    """(line number, values) of each row after the header; InputError when the file cannot be read or its header
    is not `columns`."""
    try:
        with open(path, newline="") as f:
            table = csv.reader(f)
            header = next(table, None)
            if header is None or tuple(respelled(h) for h in header) != tuple(columns):
                raise InputError(f"{path} does not start with the header {','.join(columns)}.")
            yield from enumerate(table, start=2)
    except OSError as e:
        raise InputError(f"{path} cannot be read ({e.strerror}).") from None


def parse_csv(path: Path, columns: Sequence[str], parse: Callable[[List[str]], T]) -> List[T]:
    """`parse` of each row of a CSV with the header `columns`; InputError naming the file and line when one is
    malformed."""
    rows = []
    for line, values in csv_rows(path, columns):
        try:
            rows.append(parse(values))
        except (ValueError, TypeError):
            raise InputError(f"{path} line {line} is no row of {len(columns)} values.") from None
    return rows


def read_results_csv(path: Path) -> List[ResultRow]:
    """The rows of a results.csv, refused with the file and line named when a column or value is wrong."""
    return [_row(values, path, line) for line, values in csv_rows(path, COLUMNS) if values]


def _row(values: List[str], path: Path, line: int) -> ResultRow:
    try:
        method, subjects, seed, fold, case, structure, dice = values
        row = ResultRow(method, int(subjects), int(seed), int(fold), case, structure, float(dice))
    except ValueError:
        raise InputError(f"{path} line {line} is no row of {len(COLUMNS)} values with whole numbers for "
                         f"labeled_subjects, seed and fold and a number for dice.") from None
    if not (math.isnan(row.dice) or 0.0 <= row.dice <= 1.0):
        raise InputError(f"{path} line {line} has a Dice of {row.dice}, outside 0 to 1.")
    return row
