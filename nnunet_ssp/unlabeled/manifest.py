"""The pool's `manifest.csv`: one row per stored 2D slice with its subject, frame and base-to-apex position.

Columns: case (file stem of `<case>.b2nd`), subject, frame (0-based), z (index in the stored, cropped array),
slice_index (index in the original stack), num_slices (of the original stack), position (normalised base 0 to
apex 1, from the original stack, so nnU-Net's crop does not shift it), source (the input file), labeled_case (the
training case of the raw dataset whose image equals this frame, by voxel content; empty for none). Pretraining on the
training cases and the pool together leaves a pool frame out when its labeled case is among the training cases, so
ED and ES are drawn once whatever the cases are called. Manifests written before that column read back with
labeled_case None: such a pool tells a labeled case's frame by subject and frame number only (`<subject>_frameYY`).
"""

import csv
import io
import os
from pathlib import Path
from typing import Callable, Iterable, List, NamedTuple, Optional, Sequence, Union

from batchgenerators.utilities.file_and_folder_operations import load_pickle

from nnunet_ssp.atomic import write_text
from nnunet_ssp.errors import InputError
from nnunet_ssp.slices import SliceTable, labeled_case_slices
from nnunet_ssp.spelling import respelled
from nnunet_ssp.unlabeled.plans import pool_folder

MANIFEST_FILE = "manifest.csv"
RECORD_KEY = "nnunet_ssp_unlabeled"  # our entry in a case's .pkl: subject, frame and source of the frame


class ManifestRow(NamedTuple):
    """One stored slice."""
    case: str
    subject: str
    frame: int
    z: int
    slice_index: int
    num_slices: int
    position: float
    source: str
    labeled_case: Optional[str] = ""


COLUMNS = ManifestRow._fields
_COLUMNS_BEFORE_LABELED_CASE = COLUMNS[:-1]  # pools prepared before frames were matched with the labeled cases


def pool_case(subject: str, frame: int) -> str:
    """The case name of a frame in the pool: `<subject>_t<frame:03d>`."""
    return f"{subject}_t{frame:03d}"


def case_rows(folder: Union[str, os.PathLike], case: str, transpose_forward: Sequence[int],
              flip_base_apex: bool) -> List[ManifestRow]:
    """The manifest rows of a stored case, from its array and properties (positions as for labeled cases)."""
    record = load_pickle(os.path.join(folder, case + ".pkl"))[RECORD_KEY]
    table = labeled_case_slices(str(folder), [case], transpose_forward, flip_base_apex)
    return [ManifestRow(case, record["subject"], record["frame"], z, index, count, position, record["source"])
            for z, index, count, position in zip(table.z, table.slice_index, table.num_slices, table.position)]


def write_manifest(rows: Iterable[ManifestRow], folder: Path) -> None:
    """Write `manifest.csv` into `folder` atomically."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    write_text(text.getvalue(), folder / MANIFEST_FILE)


def read_manifest(folder: Union[str, os.PathLike]) -> List[ManifestRow]:
    """The rows of `folder`'s manifest.csv."""
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        raise InputError(f"{path} is missing; prepare the pool with `nnunet-ssp prepare-unlabeled`.")
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = [respelled(h) for h in next(reader, [])]
        if header not in (list(COLUMNS), list(_COLUMNS_BEFORE_LABELED_CASE)):
            raise InputError(f"{path} does not start with the header {','.join(COLUMNS)}.")
        width = len(header)
        try:
            return [ManifestRow(*_row(values, width)) for values in reader]
        except ValueError:
            raise InputError(f"{path} line {reader.line_num} is not a row of the {width} manifest "
                             f"columns.") from None


def _row(values: List[str], width: int) -> tuple:
    """The typed fields of a manifest line of `width` columns (labeled_case None for the older 8 columns)."""
    if len(values) != width:
        raise ValueError(f"{len(values)} values")
    c, s, t, z, i, n, p, src = values[:8]
    return c, s, int(t), int(z), int(i), int(n), float(p), src, values[8] if width > 8 else None


def unlabeled_pool_slices(preprocessed_dataset_folder_base: str, data_identifier: str,
                          exclude_subjects: Iterable[str] = (), labeled: Optional[SliceTable] = None,
                          log: Callable[[str], None] = print) -> SliceTable:
    """The slices of a dataset's unlabeled pool for `data_identifier`, without the subjects in `exclude_subjects`
    and the frames already among the `labeled` slices (ED and ES): a frame equal to one of its cases, or of one of
    its (subject, frame) pairs. `log` tells when an older pool cannot be matched by content."""
    folder = pool_folder(preprocessed_dataset_folder_base, data_identifier)
    labeled = labeled if labeled is not None else SliceTable()
    excluded, cases, frames = set(exclude_subjects), set(labeled.case), set(zip(labeled.subject, labeled.frame))
    manifest = read_manifest(folder)
    if manifest and manifest[0].labeled_case is None and -1 in labeled.frame:
        log(f"{folder / MANIFEST_FILE} does not say which pool frames equal labeled cases (an older "
            f"prepare-unlabeled), so the ED and ES frames of cases not named <subject>_frameYY are drawn twice; run "
            f"prepare-unlabeled again on the same input to record it (it preprocesses no frame twice).")
    rows = [row for row in manifest if row.subject not in excluded and row.labeled_case not in cases
            and (row.subject, row.frame) not in frames]
    return SliceTable(folders=[str(folder)], folder_index=[0] * len(rows), case=[r.case for r in rows],
                      z=[r.z for r in rows], subject=[r.subject for r in rows], frame=[r.frame for r in rows],
                      slice_index=[r.slice_index for r in rows], num_slices=[r.num_slices for r in rows],
                      position=[r.position for r in rows])
