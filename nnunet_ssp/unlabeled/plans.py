"""The dataset plans a pool is preprocessed with, and where the pool lives: beside nnU-Net's own cases."""

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from batchgenerators.utilities.file_and_folder_operations import load_json
from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager

from nnunet_ssp.errors import InputError
from nnunet_ssp.roots import dataset_name_of, dataset_plans

POOL_SUFFIX = "_unlabeled"
# What decides a preprocessed frame: entries of the configuration, and of the plans as a whole. Batch size, patch
# size and network do not, so plans that differ only in those keep the pool.
FRAME_CONFIGURATION_KEYS = ("data_identifier", "preprocessor_name", "spacing", "normalization_schemes",
                            "use_mask_for_norm", "resampling_fn_data", "resampling_fn_data_kwargs",
                            "resampling_fn_seg", "resampling_fn_seg_kwargs")
FRAME_PLANS_KEYS = ("transpose_forward", "foreground_intensity_properties_per_channel", "image_reader_writer")


def pool_folder(preprocessed_dataset_folder_base: Union[str, os.PathLike], data_identifier: str) -> Path:
    """`<preprocessed dataset>/<data_identifier>_unlabeled`: outside nnU-Net's own case folder, so it never trains."""
    return Path(preprocessed_dataset_folder_base) / f"{data_identifier}{POOL_SUFFIX}"


@dataclass(frozen=True)
class PoolPlans:
    """A dataset's plans and configuration, as nnU-Net's preprocessing reads them."""
    dataset_name: str
    plans_file: Path
    configuration: str
    plans: dict
    dataset_json: dict

    @property
    def plans_manager(self) -> PlansManager:
        return PlansManager(self.plans)

    @property
    def configuration_manager(self) -> ConfigurationManager:
        return self.plans_manager.get_configuration(self.configuration)

    @property
    def folder(self) -> Path:
        """The pool folder of these plans and configuration."""
        return pool_folder(self.plans_file.parent, self.configuration_manager.data_identifier)

    def signature(self) -> str:
        """A digest of the plans entries that change a preprocessed frame (see FRAME_CONFIGURATION_KEYS)."""
        configuration = self.configuration_manager.configuration  # with the configuration's inheritance resolved
        relevant = {"configuration": {key: configuration.get(key) for key in FRAME_CONFIGURATION_KEYS},
                    "plans": {key: self.plans.get(key) for key in FRAME_PLANS_KEYS}}
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def load_pool_plans(dataset: Union[int, str], plans_name: str, configuration: str) -> PoolPlans:
    """The plans `plans_name` of a preprocessed dataset (ID or name), checked for what the pool supports."""
    dataset_name = dataset_name_of(dataset)
    plans_file, plans_json = dataset_plans(dataset_name, plans_name, configuration)
    dataset_json_file = plans_file.parent / "dataset.json"
    if not dataset_json_file.is_file():
        raise InputError(f"{dataset_json_file} is missing; plan and preprocess dataset {dataset_name} first "
                         f"(nnUNetv2_plan_and_preprocess or nnunet-ssp plan-cpu).")
    plans = PoolPlans(dataset_name, plans_file, configuration, plans_json, load_json(str(dataset_json_file)))
    manager = plans.plans_manager
    if manager.image_reader_writer_class is not SimpleITKIO:
        raise InputError(f"{plans_file} reads images with {manager.image_reader_writer_class.__name__}, but the "
                         f"unlabeled pool reproduces SimpleITKIO only.")
    channels = len(plans.dataset_json.get("channel_names", plans.dataset_json.get("modality", {})))
    if channels != 1:
        raise InputError(f"{dataset_json_file} lists {channels} input channels, but the unlabeled pool takes "
                         f"single-channel cines.")
    return plans
