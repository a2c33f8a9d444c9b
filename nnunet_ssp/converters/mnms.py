"""M&Ms layout to nnU-Net raw dataset.

Input: either the official M&Ms-1 folder (`Training/Labeled` become training subjects, `Validation` and `Testing`
test subjects) or a flat folder of subject folders. A subject folder `<s>/` holds `<s>_sa.nii.gz` (4D cine) and
`<s>_sa_gt.nii.gz` (4D labels, drawn at ED and ES). A CSV gives each subject's ED and ES as 0-based frame indices,
and its vendor and centre when known. Labels keep M&Ms' values: LV 1, MYO 2, RV 3.
"""

import csv
import re
from functools import partial
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Optional, Tuple

from nnunet_ssp.converters.common import (FILE_ENDING, TEST, TRAIN, CineFormat, ConversionResult, LabeledFrame,
                                          Subject, convert_cines, make_subject, read_label)
from nnunet_ssp.converters.images import check_same_size, read_image
from nnunet_ssp.errors import InputError

MNMS_LABELS = {"background": 0, "LV": 1, "MYO": 2, "RV": 3}

# Our name of a CSV column -> its accepted headers, compared ignoring case, spaces, '_' and '-'.
CSV_COLUMNS = {
    "subject": ("External code", "Subject code", "Subject", "Subject ID"),
    "ED": ("ED",),
    "ES": ("ES",),
    "vendor": ("Vendor",),
    "vendor_name": ("VendorName",),
    "centre": ("Centre", "Center"),
}
REQUIRED_COLUMNS = ("subject", "ED", "ES")


class PhaseRow(NamedTuple):
    """One subject's row of an information CSV (ED and ES None where the CSV gives none)."""
    ed: Optional[int]
    es: Optional[int]
    info: Dict[str, str]


def read_phase_table(csv_file: Path, columns: Dict[str, Tuple[str, ...]] = CSV_COLUMNS,
                     required: Tuple[str, ...] = REQUIRED_COLUMNS) -> Dict[str, PhaseRow]:
    """Subject -> ED, ES (0-based) and the other `columns` from an information CSV, one row per subject.

    `columns` maps our name of a column to its accepted headers; a column in `required` must be there, and ED and
    ES must then hold a frame index in every row (otherwise they are None where empty).
    """
    if not csv_file.is_file():
        raise InputError(f"{csv_file} is missing.")
    try:
        with open(csv_file, newline="", encoding="utf-8-sig") as f:
            rows = csv.reader(f)
            header = [_normalise(h) for h in next(rows, [])]
            where = {ours: next((header.index(_normalise(h)) for h in spellings if _normalise(h) in header), None)
                     for ours, spellings in columns.items()}
            for column in required:
                if where[column] is None:
                    raise InputError(f"{csv_file} has no {column} column (accepted headers: "
                                     f"{', '.join(columns[column])}; case, spaces, '_' and '-' do not matter).")
            table, line_of = {}, {}
            for row in rows:
                if any(cell.strip() for cell in row):
                    subject, phase_row = _phase_row(row, where, required, f"{csv_file} line {rows.line_num}")
                    if subject in line_of:
                        raise InputError(f"{csv_file} line {rows.line_num} repeats subject {subject} of line "
                                         f"{line_of[subject]}.")
                    table[subject], line_of[subject] = phase_row, rows.line_num
    except (UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"{csv_file} cannot be read as a CSV file ({e}).") from None
    return table


def _phase_row(row: List[str], where: Dict[str, Optional[int]], required: Tuple[str, ...],
               line: str) -> Tuple[str, PhaseRow]:
    """The subject of a CSV row and its ED, ES and other known columns; `line` names the row in messages."""
    values = {ours: row[i].strip() for ours, i in where.items() if i is not None and i < len(row)}
    subject = values.get("subject", "")
    if not subject:
        raise InputError(f"{line} has no subject.")
    phases = {}
    for phase in ("ED", "ES"):
        text = values.get(phase, "")
        if text or phase in required:
            if not text.isdigit():
                raise InputError(f"{line}: {phase} of subject {subject} is {text!r}, not a frame index.")
            phases[phase] = int(text)
    info = {k: v for k, v in values.items() if k not in ("subject", "ED", "ES") and v}
    return subject, PhaseRow(phases.get("ED"), phases.get("ES"), info)


def _normalise(header: str) -> str:
    return re.sub(r"[\s_\-]", "", header.lower())


def _read_subject(folder: Path, split: str, table: Dict[str, PhaseRow], csv_file: Path) -> Subject:
    row = table.get(folder.name)
    if row is None:
        raise InputError(f"{csv_file} has no row for subject {folder.name} (folder {folder}).")
    return make_subject(folder.name, split, folder / f"{folder.name}_sa{FILE_ENDING}", {"ED": row.ed, "ES": row.es},
                        0, csv_file, row.info)


def _read_frames(subject: Subject) -> Iterator[LabeledFrame]:
    label_file = subject.cine.parent / f"{subject.name}_sa_gt{FILE_ENDING}"
    cine = read_image(subject.cine, 4)
    labels = read_label(label_file, subject, 4)
    if labels is not None:
        check_same_size(cine, labels, subject.cine, label_file)
    for index in (subject.ed, subject.es):
        yield LabeledFrame(index, cine[:, :, :, index], None if labels is None else labels[:, :, :, index],
                           subject.cine, label_file)


def mnms_format(csv_file: Path) -> CineFormat:
    """The M&Ms layout, with ED and ES taken from `csv_file`."""
    csv_file = Path(csv_file).resolve()
    return CineFormat(name="M&Ms", labels=MNMS_LABELS, reference="https://www.ub.edu/mnms/",
                      official_folders={"Training/Labeled": TRAIN, "Validation": TEST, "Testing": TEST},
                      read_subject=partial(_read_subject, table=read_phase_table(csv_file), csv_file=csv_file),
                      read_frames=_read_frames)


def convert_mnms(input_dir: Path, csv_file: Path, dataset_id: int, name: str = "MNMs",
                 test_subjects: Optional[int] = None, test_list: Optional[Path] = None,
                 overwrite: bool = False) -> ConversionResult:
    """Convert an M&Ms-layout folder into `$nnUNet_raw/DatasetXXX_NAME` with subject-grouped folds and cines.json.

    A flat folder holds out `test_subjects` subjects (a seeded random draw) or the subjects named in `test_list`.
    """
    return convert_cines(mnms_format(csv_file), Path(input_dir), dataset_id, name, test_subjects, test_list,
                         overwrite)
