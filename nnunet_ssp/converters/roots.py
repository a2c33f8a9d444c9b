"""nnU-Net's data roots (`nnUNet_raw`, `nnUNet_preprocessed`) as folders of one dataset."""

from pathlib import Path
from typing import Optional, Union

from nnunetv2.paths import nnUNet_preprocessed, nnUNet_raw
from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

from nnunet_ssp.errors import InputError


def raw_dataset_folder(dataset_name: str) -> Path:
    """`$nnUNet_raw/<dataset_name>`; nnUNet_raw must be set."""
    if not nnUNet_raw.is_set():
        raise InputError("The environment variable nnUNet_raw is not set; export it (see `nnunet-ssp env`).")
    return Path(nnUNet_raw.get()) / dataset_name


def preprocessed_dataset_folder(dataset_name: str) -> Optional[Path]:
    """`$nnUNet_preprocessed/<dataset_name>`, or None when nnUNet_preprocessed is not set."""
    return Path(nnUNet_preprocessed.get()) / dataset_name if nnUNet_preprocessed.is_set() else None


def dataset_name_of(dataset: Union[int, str]) -> str:
    """The full name `DatasetXXX_NAME` of a dataset given by ID or name."""
    try:
        return maybe_convert_to_dataset_name(dataset)
    except (RuntimeError, ValueError):  # nnU-Net: no or several datasets with that ID, or not a number
        raise InputError(f"No nnU-Net dataset with ID {dataset} exists under nnUNet_raw.") from None
