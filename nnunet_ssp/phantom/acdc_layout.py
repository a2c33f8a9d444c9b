"""Write a subject in the ACDC folder layout: 4D cine, ED/ES frames with labels, Info.cfg (read back by the ACDC
converter's `read_info_cfg`)."""

from pathlib import Path
from typing import Union

import numpy as np
import SimpleITK as sitk

from nnunet_ssp.atomic import atomic_dir
from nnunet_ssp.converters.acdc import INFO_FILE
from nnunet_ssp.converters.cases import case_id
from nnunet_ssp.converters.common import FILE_ENDING
from nnunet_ssp.phantom.cine import Cine
from nnunet_ssp.phantom.geometry import ScanGeometry

INFO_KEYS = ("ED", "ES", "Group", "Height", "NbFrame", "Weight")


def patient_name(index: int, n_subjects: int) -> str:
    """ACDC folder name of subject `index` (1-based): patient001, or wider when there are more than 999."""
    return f"patient{index:0{max(3, len(str(n_subjects)))}d}"


def volume_image(array: np.ndarray, scan: ScanGeometry) -> sitk.Image:
    """A 3D SimpleITK image (array z, y, x) with the stack's spacing, origin and short-axis direction."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(scan.spacing)
    image.SetOrigin(tuple(float(v) for v in scan.origin))
    image.SetDirection(tuple(float(v) for v in scan.direction.ravel()))
    return image


def cine_image(array: np.ndarray, scan: ScanGeometry) -> sitk.Image:
    """A 4D SimpleITK image (array t, z, y, x): the 3D geometry plus a unit time axis."""
    image = sitk.GetImageFromArray(array, isVector=False)
    image.SetSpacing(scan.spacing + (1.0,))
    image.SetOrigin(tuple(float(v) for v in scan.origin) + (0.0,))
    direction = np.eye(4)
    direction[:3, :3] = scan.direction
    image.SetDirection(tuple(float(v) for v in direction.ravel()))
    return image


def info_text(cine: Cine) -> str:
    """Info.cfg contents in ACDC's format (1-based ED and ES frames)."""
    plan = cine.plan
    values = {"ED": plan.motion.ed + 1, "ES": plan.motion.es + 1, "Group": plan.group,
              "Height": f"{plan.height_cm:.1f}", "NbFrame": plan.motion.n_frames, "Weight": f"{plan.weight_kg:.1f}"}
    return "".join(f"{key}: {values[key]}\n" for key in INFO_KEYS)


def write_subject(cine: Cine, folder: Union[str, Path], name: str) -> Path:
    """Write one subject as `folder/name/` in the ACDC layout; the folder appears complete or not at all."""
    target = Path(folder) / name
    scan = cine.plan.scan
    with atomic_dir(target) as tmp:
        sitk.WriteImage(cine_image(cine.image, scan), str(tmp / f"{name}_4d{FILE_ENDING}"), useCompression=True)
        for frame, labels in sorted(cine.labels.items()):
            stem = tmp / case_id(name, frame)
            sitk.WriteImage(volume_image(cine.image[frame], scan), f"{stem}{FILE_ENDING}", useCompression=True)
            sitk.WriteImage(volume_image(labels, scan), f"{stem}_gt{FILE_ENDING}", useCompression=True)
        (tmp / INFO_FILE).write_text(info_text(cine))
    return target

