"""The pool's `manifest.csv`: one row per stored 2D slice with its subject, frame and base-to-apex position.

Columns: case (file stem of `<case>.b2nd`), subject, frame (0-based), z (index in the stored, cropped array),
slice_index (index in the original stack), num_slices (of the original stack), position (normalised base 0 to
apex 1, from the original stack, so nnU-Net's crop does not shift it), source (the input file).
"""

import csv
import io
import os
from pathlib import Path
from typing import Iterable, List, NamedTuple, Sequence, Tuple, Union

from batchgenerators.utilities.file_and_folder_operations import load_pickle

from nnunet_ssp.atomic import write_text
from nnunet_ssp.errors import InputError
from nnunet_ssp.slices import SliceTable, labelled_case_slices
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


COLUMNS = ManifestRow._fields


def pool_case(subject: str, frame: int) -> str:
    """The case name of a frame in the pool: `<subject>_t<frame:03d>`."""
    return f"{subject}_t{frame:03d}"


def case_rows(folder: Union[str, os.PathLike], case: str, transpose_forward: Sequence[int],
              flip_base_apex: bool) -> List[ManifestRow]:
    """The manifest rows of a stored case, from its array and properties (positions as for labelled cases)."""
    record = load_pickle(os.path.join(folder, case + ".pkl"))[RECORD_KEY]
    table = labelled_case_slices(str(folder), [case], transpose_forward, flip_base_apex)
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
        if next(reader, None) != list(COLUMNS):
            raise InputError(f"{path} does not start with the header {','.join(COLUMNS)}.")
        try:
            return [ManifestRow(c, s, int(t), int(z), int(i), int(n), float(p), src)
                    for c, s, t, z, i, n, p, src in reader]
        except ValueError:
            raise InputError(f"{path} line {reader.line_num} is not a row of the {len(COLUMNS)} manifest "
                             f"columns.") from None


def unlabeled_pool_slices(preprocessed_dataset_folder_base: str, data_identifier: str,
                          exclude_subjects: Iterable[str] = (),
                          exclude_frames: Iterable[Tuple[str, int]] = ()) -> SliceTable:
    """The slices of a dataset's unlabeled pool for `data_identifier`, without the subjects in `exclude_subjects`
    and the (subject, frame) pairs in `exclude_frames` (e.g. ED and ES, already among the labelled cases)."""
    folder = pool_folder(preprocessed_dataset_folder_base, data_identifier)
    excluded, excluded_frames = set(exclude_subjects), set(exclude_frames)
    rows = [row for row in read_manifest(folder)
            if row.subject not in excluded and (row.subject, row.frame) not in excluded_frames]
    return SliceTable(folders=[str(folder)], folder_index=[0] * len(rows), case=[r.case for r in rows],
                      z=[r.z for r in rows], subject=[r.subject for r in rows], frame=[r.frame for r in rows],
                      slice_index=[r.slice_index for r in rows], num_slices=[r.num_slices for r in rows],
                      position=[r.position for r in rows])
