"""Write (and read back) a subject in the ACDC folder layout: 4D cine, ED/ES frames with labels, Info.cfg."""

import os
from pathlib import Path
from typing import Dict, Union

import numpy as np
import SimpleITK as sitk

from nnunet_ssp.atomic import atomic_dir
from nnunet_ssp.phantom.cine import Cine
from nnunet_ssp.phantom.geometry import ScanGeometry

INFO_KEYS = ("ED", "ES", "Group", "Height", "NbFrame", "Weight")


def patient_name(index: int, n_subjects: int) -> str:
    """ACDC folder name of subject `index` (1-based): patient001, or wider when there are more than 999."""
    return f"patient{index:0{max(3, len(str(n_subjects)))}d}"


def _volume(array: np.ndarray, scan: ScanGeometry) -> sitk.Image:
    """A 3D SimpleITK image (array z, y, x) with the stack's spacing, origin and short-axis direction."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(scan.spacing)
    image.SetOrigin(tuple(float(v) for v in scan.origin))
    image.SetDirection(tuple(float(v) for v in scan.direction.ravel()))
    return image


def _cine_volume(array: np.ndarray, scan: ScanGeometry) -> sitk.Image:
    """A 4D SimpleITK image (array t, z, y, x): the 3D geometry plus a unit time axis."""
    image = sitk.GetImageFromArray(array, isVector=False)
    image.SetSpacing(scan.spacing + (1.0,))
    image.SetOrigin(tuple(float(v) for v in scan.origin) + (0.0,))
    direction = np.eye(4)
    direction[:3, :3] = scan.direction
    image.SetDirection(tuple(float(v) for v in direction.ravel()))
    return image


def apply_default_permissions(path: Path) -> None:
    """Give a temporary (private) file or folder the permissions a newly created one would have."""
    mask = os.umask(0)
    os.umask(mask)
    path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)


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
        apply_default_permissions(tmp)
        sitk.WriteImage(_cine_volume(cine.image, scan), str(tmp / f"{name}_4d.nii.gz"), useCompression=True)
        for frame, labels in sorted(cine.labels.items()):
            stem = tmp / f"{name}_frame{frame + 1:02d}"
            sitk.WriteImage(_volume(cine.image[frame], scan), f"{stem}.nii.gz", useCompression=True)
            sitk.WriteImage(_volume(labels, scan), f"{stem}_gt.nii.gz", useCompression=True)
        (tmp / "Info.cfg").write_text(info_text(cine))
    return target


def read_info(path: Union[str, Path]) -> Dict[str, str]:
    """The key: value pairs of an ACDC Info.cfg."""
    info = {}
    for line in Path(path).read_text().splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info[key.strip()] = value.strip()
    return info
