"""ACDC layout to nnU-Net raw dataset.

Input: either the official folder with `training/` and `testing/` (testing subjects become the test set), or a flat
folder of subject folders (our synthetic phantom writes that). A subject folder `<s>/` holds `<s>_4d.nii.gz`
(x, y, z, t), `<s>_frameYY.nii.gz` and `<s>_frameYY_gt.nii.gz` for ED and ES, and `Info.cfg` with lines such as
`ED: 1`, `ES: 12`, `Group: DCM` (frames numbered from 1). Labels keep ACDC's values: RV 1, MYO 2, LV 3.
"""

from pathlib import Path
from typing import Dict, Iterator, Optional

from nnunet_ssp.converters.cases import case_id
from nnunet_ssp.converters.common import (FILE_ENDING, TEST, TRAIN, CineFormat, ConversionResult, LabeledFrame,
                                          Subject, convert_cines, make_subject, read_label)
from nnunet_ssp.converters.images import read_image
from nnunet_ssp.errors import InputError

ACDC_LABELS = {"background": 0, "RV": 1, "MYO": 2, "LV": 3}
INFO_FILE = "Info.cfg"


def read_info_cfg(info_file: Path) -> Dict[str, str]:
    """The `Key: value` lines of an ACDC Info.cfg."""
    if not info_file.is_file():
        raise InputError(f"{info_file} is missing.")
    entries = (line.split(":", 1) for line in info_file.read_text().splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in entries}


def _read_subject(folder: Path, split: str) -> Subject:
    info_file = folder / INFO_FILE
    info = read_info_cfg(info_file)
    phases = {}
    for phase in ("ED", "ES"):
        if phase not in info:
            raise InputError(f"{info_file} has no '{phase}:' line.")
        if not info[phase].isdigit():
            raise InputError(f"{info_file}: {phase} is {info[phase]!r}, not a frame number.")
        phases[phase] = int(info[phase])
    known = {"group": info["Group"]} if "Group" in info else {}
    return make_subject(folder.name, split, folder / f"{folder.name}_4d{FILE_ENDING}", phases, 1, info_file, known)


def _read_frames(subject: Subject) -> Iterator[LabeledFrame]:
    for index in (subject.ed, subject.es):
        stem = subject.cine.parent / case_id(subject.name, index)
        image_file, label_file = Path(f"{stem}{FILE_ENDING}"), Path(f"{stem}_gt{FILE_ENDING}")
        yield LabeledFrame(index, read_image(image_file, 3), read_label(label_file, subject, 3), image_file,
                           label_file)


ACDC = CineFormat(name="ACDC", labels=ACDC_LABELS, reference="https://www.creatis.insa-lyon.fr/Challenge/acdc/",
                  official_folders={"training": TRAIN, "testing": TEST}, read_subject=_read_subject,
                  read_frames=_read_frames)


def convert_acdc(input_dir: Path, dataset_id: int, name: str = "ACDC", test_subjects: Optional[int] = None,
                 test_list: Optional[Path] = None, overwrite: bool = False) -> ConversionResult:
    """Convert an ACDC-layout folder into `$nnUNet_raw/DatasetXXX_NAME` with subject-grouped folds and cines.json.

    A flat folder holds out `test_subjects` subjects (a seeded random draw) or the subjects named in `test_list`.
    """
    return convert_cines(ACDC, Path(input_dir), dataset_id, name, test_subjects, test_list, overwrite)
