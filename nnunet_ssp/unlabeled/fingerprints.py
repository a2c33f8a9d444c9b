"""Voxel fingerprints: a digest of a 3D frame's voxels after loading, so an image is known by content, not by name.

A frame's fingerprint is a BLAKE2 digest of its shape and its voxels as float32 (the type nnU-Net's reader gives), so
a cine's frame and the same frame written as a 3D file (in any integer or float type) agree. The unlabeled pool's
guard compares every frame of its inputs against the dataset's labeled images: a frame equal to a test image is
refused whatever its file is called, and a frame equal to a training case of another subject stops the run.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
from nnunetv2.utilities.utils import get_identifiers_from_splitted_dataset_folder
from tqdm import tqdm

from nnunet_ssp.converters.images import itk_reason
from nnunet_ssp.errors import InputError
from nnunet_ssp.subjects import SubjectRule


@dataclass(frozen=True)
class LabeledImage:
    """A labeled case of the raw dataset: its id, subject (by the dataset's rule) and image file."""
    case: str
    subject: str
    file: Path


def frame_fingerprint(voxels: np.ndarray) -> str:
    """The digest of a 3D frame's shape and float32 voxels."""
    frame = np.ascontiguousarray(voxels, dtype=np.float32)
    digest = hashlib.blake2b(str(frame.shape).encode(), digest_size=16)
    digest.update(frame.tobytes())
    return digest.hexdigest()


def cine_fingerprints(voxels: np.ndarray) -> List[str]:
    """The fingerprint of each frame of an image read as (frames, z, y, x)."""
    return [frame_fingerprint(frame) for frame in voxels]


def labeled_images(folder: Path, file_ending: str, rule: SubjectRule) -> List[LabeledImage]:
    """The cases of a raw dataset's images folder (first channel), each with its subject by `rule`."""
    if not folder.is_dir():
        return []
    cases = get_identifiers_from_splitted_dataset_folder(str(folder), file_ending)
    subjects = {case: subject for subject, cases_of in rule.group(cases, folder).items() for case in cases_of}
    return [LabeledImage(str(case), subjects[str(case)], folder / f"{case}_0000{file_ending}")
            for case in sorted(map(str, cases))]


def image_fingerprints(images: Sequence[LabeledImage], what: str) -> Dict[str, LabeledImage]:
    """Fingerprint -> image, reading each image as nnU-Net's SimpleITKIO does."""
    found = {}
    for image in tqdm(images, desc=f"Fingerprinting {what}", unit="image", disable=not images):
        try:
            voxels, _ = SimpleITKIO().read_images([str(image.file)])
        except RuntimeError as e:
            raise InputError(f"{image.file} cannot be read as an image ({itk_reason(e)}).") from None
        for fingerprint in cine_fingerprints(voxels):
            found[fingerprint] = image
    return found
