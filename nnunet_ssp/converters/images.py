"""Reading source images with SimpleITK; unreadable files and wrong dimensions stop with an InputError."""

from pathlib import Path
from typing import Tuple

import SimpleITK as sitk

from nnunet_ssp.errors import InputError

_EXPECTED = {3: "a 3D frame (x, y, z)", 4: "a 4D cine (x, y, z, t)"}


def read_size(path: Path, dimension: int) -> Tuple[int, ...]:
    """The size (x, y, z[, t]) of the image at `path`, read from its header; it must have `dimension` axes."""
    return _open(path, dimension).GetSize()


def read_image(path: Path, dimension: int) -> sitk.Image:
    """The image at `path`; it must have `dimension` axes."""
    reader = _open(path, dimension)
    try:
        return reader.Execute()
    except RuntimeError as e:
        raise InputError(f"{path} cannot be read as an image ({itk_reason(e)}).") from None


def check_same_size(image: sitk.Image, label: sitk.Image, image_file: Path, label_file: Path) -> None:
    """Refuse a label map whose size differs from its image's."""
    if image.GetSize() != label.GetSize():
        raise InputError(f"{label_file} has size {label.GetSize()}, but its image {image_file} has size "
                         f"{image.GetSize()}.")


def read_header(path: Path) -> sitk.ImageFileReader:
    """A reader holding the header (size, spacing, direction, components) of the image at `path`."""
    if not path.is_file():
        raise InputError(f"{path} is missing.")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as e:
        raise InputError(f"{path} cannot be read as an image ({itk_reason(e)}).") from None
    return reader


def _open(path: Path, dimension: int) -> sitk.ImageFileReader:
    reader = read_header(path)
    if reader.GetDimension() != dimension:
        raise InputError(f"{path} is {reader.GetDimension()}D, but {_EXPECTED[dimension]} is expected.")
    return reader


def itk_reason(error: RuntimeError) -> str:
    """The last line of an ITK exception, without its location prefix."""
    return str(error).strip().splitlines()[-1].replace("sitk::ERROR: ", "")
