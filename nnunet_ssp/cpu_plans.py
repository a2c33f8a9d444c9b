"""CPU-sized nnU-Net plans: nnU-Net's own planner with fewer features, for tests, demos and CPU benchmarks."""

import os
from typing import Optional, Sequence

from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner

from nnunet_ssp.errors import InputError

CPU_PLANS_NAME = "nnUNetPlansCPU"


class CPUExperimentPlanner(ExperimentPlanner):
    """nnU-Net's default planner with half the features per stage (16 to 256) and an optional fixed batch size."""

    base_num_features = 16
    max_num_features = 256
    fixed_batch_size: Optional[int] = None

    def __init__(self, dataset_name_or_id, gpu_memory_target_in_gb: float = 8,
                 preprocessor_name: str = "DefaultPreprocessor", plans_name: str = CPU_PLANS_NAME,
                 overwrite_target_spacing=None, suppress_transpose: bool = False):
        super().__init__(dataset_name_or_id, gpu_memory_target_in_gb, preprocessor_name, plans_name,
                         overwrite_target_spacing, suppress_transpose)
        self.UNet_base_num_features = self.base_num_features
        self.UNet_max_features_2d = self.max_num_features
        self.UNet_max_features_3d = min(self.UNet_max_features_3d, self.max_num_features)

    def get_plans_for_configuration(self, *args, **kwargs) -> dict:
        """nnU-Net's plan for one configuration, with the batch size fixed when asked."""
        plan = super().get_plans_for_configuration(*args, **kwargs)
        if self.fixed_batch_size is not None:
            plan["batch_size"] = self.fixed_batch_size
        return plan


def plan_and_preprocess_cpu(dataset_id: int, configurations: Sequence[str] = ("2d",), num_processes: int = 2,
                            batch_size: Optional[int] = None, plans_name: str = CPU_PLANS_NAME) -> str:
    """Fingerprint (if missing), plan with `CPUExperimentPlanner` and preprocess; returns the plans name."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprint_dataset, plan_experiment_dataset, preprocess_dataset)
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.dataset_name_id_conversion import convert_id_to_dataset_name

    try:
        dataset_name = convert_id_to_dataset_name(dataset_id)
    except RuntimeError:
        raise InputError(f"There is no dataset with ID {dataset_id} in nnUNet_raw or nnUNet_preprocessed "
                         f"({os.environ.get('nnUNet_raw')}, {os.environ.get('nnUNet_preprocessed')}).") from None
    if not os.path.isfile(os.path.join(nnUNet_preprocessed, dataset_name, "dataset_fingerprint.json")):
        extract_fingerprint_dataset(dataset_id, num_processes=num_processes, check_dataset_integrity=True,
                                    clean=True, verbose=False)
    planner_class = type("CPUExperimentPlannerWithBatch", (CPUExperimentPlanner,), {"fixed_batch_size": batch_size})
    plan_experiment_dataset(dataset_id, planner_class, overwrite_plans_name=plans_name)
    preprocess_dataset(dataset_id, plans_name, tuple(configurations), (num_processes,) * len(configurations))
    return plans_name
