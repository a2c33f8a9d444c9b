"""M&Ms-2 layout to nnU-Net raw dataset.

Input: a folder of subject folders (the release's `dataset/`). A subject folder `<s>/` holds the short-axis cine
`<s>_SA_CINE.nii.gz` (x, y, z, t), its ED and ES frames `<s>_SA_ED.nii.gz` and `<s>_SA_ES.nii.gz` (x, y, z) and
their label maps `<s>_SA_ED_gt.nii.gz` and `<s>_SA_ES_gt.nii.gz` (the long-axis `<s>_LA_*` files are not used).
The information CSV (the release's `dataset_information.csv`) names each subject by its code (`SUBJECT_CODE`; a
number is the zero-padded folder name, 1 is `001`) with its disease, vendor, scanner and field strength. It has no
frame numbers: each labeled frame is found in the cine as the frame with the same voxels, unless the CSV has ED
and ES columns (0-based frame indices). Labels keep M&Ms' values: LV 1, MYO 2, RV 3.

A subject with bad files (a missing or unreadable file, a frame whose geometry differs from its cine's, a frame
found nowhere in the cine, no CSV row) is left out with a warning and the others are converted; so is a subject
the CSV names that has no folder.
"""

from functools import partial
from pathlib import Path
from typing import Dict, Iterator, Optional, Set, Tuple

import numpy as np
import SimpleITK as sitk

from nnunet_ssp.converters.common import (FILE_ENDING, CineFormat, ConversionResult, LabeledFrame, Subject,
                                          convert_cines, make_subject, read_label)
from nnunet_ssp.converters.images import read_header, read_image
from nnunet_ssp.converters.mnms import MNMS_LABELS, PhaseRow, read_phase_table
from nnunet_ssp.errors import InputError

CINE_SUFFIX = "_SA_CINE"
PHASES = ("ED", "ES")
CSV_COLUMNS = {
    "subject": ("SUBJECT_CODE", "External code", "Subject ID", "Subject"),
    "ED": ("ED",),
    "ES": ("ES",),
    "group": ("DISEASE", "Pathology"),
    "vendor_name": ("VENDOR", "VendorName"),
    "scanner": ("SCANNER",),
    "field": ("FIELD",),
}
SUBJECT_DIGITS = 3  # the release's folder names: 001 ... 360


def cine_file(folder: Path, subject: str) -> Path:
    """The short-axis cine of `subject` in its folder."""
    return folder / f"{subject}{CINE_SUFFIX}{FILE_ENDING}"


def phase_files(folder: Path, subject: str, phase: str) -> Tuple[Path, Path]:
    """The image and label files of `subject`'s ED or ES frame."""
    stem = folder / f"{subject}_SA_{phase}"
    return Path(f"{stem}{FILE_ENDING}"), Path(f"{stem}_gt{FILE_ENDING}")


def subject_name(code: str) -> str:
    """The folder name of a CSV subject code: a number zero-padded to three digits, anything else as it is."""
    return f"{int(code):0{SUBJECT_DIGITS}d}" if code.isdigit() else code


def read_subject_table(csv_file: Path) -> Dict[str, PhaseRow]:
    """Folder name -> the subject's row of an M&Ms-2 information CSV."""
    table: Dict[str, PhaseRow] = {}
    for code, row in read_phase_table(csv_file, CSV_COLUMNS, ("subject",)).items():
        name = subject_name(code)
        if name in table:
            raise InputError(f"{csv_file} names subject {name} twice (as {code} and another code).")
        if (row.ed is None) != (row.es is None):
            raise InputError(f"{csv_file} gives only one of ED and ES for subject {name}.")
        table[name] = row
    return table


def _geometry(path: Path) -> Dict[str, tuple]:
    """Size, spacing, origin and direction of the first three axes of the image at `path`."""
    header = read_header(path)
    n = header.GetDimension()
    direction = np.asarray(header.GetDirection()).reshape(n, n)[:3, :3]
    return {"size": header.GetSize()[:3], "spacing": header.GetSpacing()[:3], "origin": header.GetOrigin()[:3],
            "direction": tuple(direction.ravel())}


def check_same_geometry(frame_file: Path, cine: Path) -> None:
    """Refuse a frame whose grid (size, spacing, origin, direction) differs from its cine's."""
    frame, movie = _geometry(frame_file), _geometry(cine)
    for key in frame:
        if not np.allclose(frame[key], movie[key], rtol=1e-4, atol=1e-4):
            values = [tuple(round(float(v), 4) for v in g[key]) for g in (frame, movie)]
            raise InputError(f"{frame_file} has {key} {values[0]}, but its cine {cine} has {values[1]}.")


def find_frame(cine: np.ndarray, frame: np.ndarray, frame_file: Path, cine_path: Path) -> int:
    """The index of the frame of `cine` (t, z, y, x) whose voxels equal `frame` (z, y, x), up to float rounding."""
    reference = frame.astype(np.float64)
    differences = [float(np.abs(movie_frame - reference).max()) for movie_frame in cine]
    best = int(np.argmin(differences))
    if differences[best] > 1e-4 * max(float(np.abs(frame).max()), 1.0):
        raise InputError(f"{frame_file} equals no frame of its cine {cine_path} (give ED and ES in the CSV).")
    return best


def _read_subject(folder: Path, split: str, table: Dict[str, PhaseRow], csv_file: Path) -> Subject:
    name = folder.name
    row = table.get(name)
    if row is None:
        raise InputError(f"{csv_file} has no row for subject {name} (folder {folder}).")
    cine = cine_file(folder, name)
    frame_files = {phase: phase_files(folder, name, phase)[0] for phase in PHASES}
    for frame_file in frame_files.values():
        check_same_geometry(frame_file, cine)
    if row.ed is not None:
        phases = {"ED": row.ed, "ES": row.es}
    else:
        movie = sitk.GetArrayFromImage(read_image(cine, 4))
        phases = {phase: find_frame(movie, sitk.GetArrayFromImage(read_image(path, 3)), path, cine)
                  for phase, path in frame_files.items()}
    return make_subject(name, split, cine, phases, 0, csv_file, row.info)


def _read_frames(subject: Subject) -> Iterator[LabeledFrame]:
    for phase, index in zip(PHASES, (subject.ed, subject.es)):
        image_file, label_file = phase_files(subject.cine.parent, subject.name, phase)
        yield LabeledFrame(index, read_image(image_file, 3), read_label(label_file, subject, 3), image_file,
                           label_file)


def _absent(found: Set[str], table: Dict[str, PhaseRow], csv_file: Path, input_dir: Path) -> Dict[str, str]:
    return {name: f"{csv_file} names subject {name}, but {input_dir} has no folder {name}."
            for name in sorted(set(table) - found)}


def mnms2_format(csv_file: Path, input_dir: Path) -> CineFormat:
    """The M&Ms-2 layout, with the subjects of `csv_file` expected as folders of `input_dir`."""
    csv_file = Path(csv_file).resolve()
    table = read_subject_table(csv_file)
    return CineFormat(name="M&Ms-2", labels=MNMS_LABELS, reference="https://www.ub.edu/mnms-2/", official_folders={},
                      read_subject=partial(_read_subject, table=table, csv_file=csv_file), read_frames=_read_frames,
                      skip_bad_subjects=True,
                      absent_subjects=partial(_absent, table=table, csv_file=csv_file,
                                              input_dir=Path(input_dir).resolve()))


def convert_mnms2(input_dir: Path, csv_file: Path, dataset_id: int, name: str = "MNMs2",
                  test_subjects: Optional[int] = None, test_list: Optional[Path] = None,
                  overwrite: bool = False) -> ConversionResult:
    """Convert an M&Ms-2 folder into `$nnUNet_raw/DatasetXXX_NAME` with subject-grouped folds and cines.json.

    `test_subjects` subjects (a seeded random draw) or the subjects named in `test_list` are held out for testing.
    """
    return convert_cines(mnms2_format(csv_file, input_dir), Path(input_dir), dataset_id, name, test_subjects,
                         test_list, overwrite)

