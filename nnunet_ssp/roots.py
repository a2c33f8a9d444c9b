"""nnU-Net's data roots (`nnUNet_raw`, `nnUNet_preprocessed`) as folders of one dataset, and a dataset's full name."""

import json
from pathlib import Path
from typing import Tuple, Union

from nnunetv2.paths import nnUNet_preprocessed, nnUNet_raw
from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunet_ssp.errors import InputError


def raw_dataset_folder(dataset_name: str) -> Path:
    """`$nnUNet_raw/<dataset_name>`; InputError when nnUNet_raw is not set."""
    if not nnUNet_raw.is_set():
        raise InputError("The environment variable nnUNet_raw is not set; export it (see `nnunet-ssp env`).")
    return Path(nnUNet_raw.get()) / dataset_name


def preprocessed_dataset_folder(dataset_name: str) -> Path:
    """`$nnUNet_preprocessed/<dataset_name>`; InputError when nnUNet_preprocessed is not set."""
    if not nnUNet_preprocessed.is_set():
        raise InputError("The environment variable nnUNet_preprocessed is not set; export it (see `nnunet-ssp env`).")
    return Path(nnUNet_preprocessed.get()) / dataset_name


def dataset_name_of(dataset: Union[int, str]) -> str:
    """The full name `DatasetXXX_NAME` of a dataset given by ID or name."""
    try:
        return maybe_convert_to_dataset_name(dataset)
    except (RuntimeError, ValueError):  # nnU-Net: no or several datasets with that ID, or not a number
        raise InputError(f"No nnU-Net dataset with ID {dataset} exists under nnUNet_raw, nnUNet_preprocessed "
                         f"or nnUNet_results.") from None


def dataset_plans(dataset_name: str, plans_name: str, configuration: str) -> Tuple[Path, dict]:
    """The file and contents of plans `plans_name` of a dataset; InputError naming the file when it is missing, not
    readable JSON or without `configuration`."""
    plans_file = preprocessed_dataset_folder(dataset_name) / f"{plans_name}.json"
    if not plans_file.is_file():
        raise InputError(f"{plans_file} is missing; plan and preprocess dataset {dataset_name} first "
                         f"(nnUNetv2_plan_and_preprocess or nnunet-ssp plan-cpu).")
    try:
        plans = json.loads(plans_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{plans_file} is not a readable plans file ({type(e).__name__}).") from None
    configurations = plans.get("configurations", {}) if isinstance(plans, dict) else {}
    if configuration not in configurations:
        raise InputError(f"{plans_file} has no configuration {configuration!r} "
                         f"(it has {', '.join(configurations) or 'none'}).")
    return plans_file, plans


def preprocessed_configuration_folder(dataset_name: str, plans_name: str, configuration: str) -> Path:
    """The folder of a dataset's cases preprocessed for `configuration` of plans `plans_name`; InputError naming what
    is missing (the plans, the configuration in them, or its preprocessing)."""
    plans_file, plans = dataset_plans(dataset_name, plans_name, configuration)
    cases = plans_file.parent / PlansManager(plans).get_configuration(configuration).data_identifier
    check_preprocessed_folder(cases, dataset_name, plans_name, configuration)
    return cases


def check_preprocessed_folder(cases: Path, dataset_name: str, plans_name: str, configuration: str) -> None:
    """InputError naming the preprocessing to run when `cases`, the folder of a configuration's cases, is missing."""
    if not cases.is_dir():
        raise InputError(f"{cases} is missing: dataset {dataset_name} is not preprocessed for {configuration}; run "
                         f"nnUNetv2_preprocess -d {int(dataset_name[7:10])} -plans_name {plans_name} -c "
                         f"{configuration} (or nnunet-ssp plan-cpu -c {configuration}).")
