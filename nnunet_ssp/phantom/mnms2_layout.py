"""Write subjects in the M&Ms-2 folder layout: SA cine, ED/ES frames with labels (LV 1, MYO 2, RV 3), and the
information CSV (read back by the M&Ms-2 converter)."""

import csv
import io
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import SimpleITK as sitk

from nnunet_ssp.atomic import atomic_dir, write_text
from nnunet_ssp.converters.mnms2 import SUBJECT_DIGITS, cine_file, phase_files
from nnunet_ssp.phantom.acdc_layout import cine_image, volume_image
from nnunet_ssp.phantom.cine import Cine

INFORMATION_CSV = "dataset_information.csv"
ACDC_TO_MNMS = np.array([0, 3, 2, 1], dtype=np.uint8)  # ACDC's RV 1, MYO 2, LV 3 -> M&Ms' LV 1, MYO 2, RV 3


def subject_code(index: int, n_subjects: int) -> str:
    """M&Ms-2 folder name of subject `index` (1-based): 001, or wider when there are more than 999."""
    return f"{index:0{max(SUBJECT_DIGITS, len(str(n_subjects)))}d}"


def write_subject(cine: Cine, folder: Union[str, Path], name: str) -> Path:
    """Write one subject as `folder/name/` in the M&Ms-2 layout; the folder appears complete or not at all."""
    target = Path(folder) / name
    scan, motion = cine.plan.scan, cine.plan.motion
    with atomic_dir(target) as tmp:
        sitk.WriteImage(cine_image(cine.image, scan), str(cine_file(tmp, name)), useCompression=True)
        for phase, frame in (("ED", motion.ed), ("ES", motion.es)):
            image_file, label_file = phase_files(tmp, name, phase)
            sitk.WriteImage(volume_image(cine.image[frame], scan), str(image_file), useCompression=True)
            sitk.WriteImage(volume_image(ACDC_TO_MNMS[cine.labels[frame]], scan), str(label_file),
                            useCompression=True)
    return target


def write_information_csv(folder: Union[str, Path], names: Sequence[str], groups: Sequence[str],
                          vendors: Sequence[str]) -> Path:
    """The release's information CSV (SUBJECT_CODE as a number, DISEASE, VENDOR) of the subjects, in `folder`."""
    text = io.StringIO()
    table = csv.writer(text, lineterminator="\n")
    table.writerow(["SUBJECT_CODE", "DISEASE", "VENDOR"])
    table.writerows([int(name), group, vendor] for name, group, vendor in zip(names, groups, vendors))
    path = Path(folder) / INFORMATION_CSV
    write_text(text.getvalue(), path)
    return path
