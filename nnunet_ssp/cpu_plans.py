"""CPU-sized nnU-Net plans: one of nnU-Net's own planners with fewer features, for tests, demos and CPU benchmarks."""

import inspect
import os
from typing import Optional, Sequence, Type

from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
from nnunetv2.paths import nnUNet_preprocessed

from nnunet_ssp.errors import InputError

DEFAULT_PLANNER = "ExperimentPlanner"
CPU_SUFFIX = "CPU"
CPU_PLANS_NAME = "nnUNetPlans" + CPU_SUFFIX


class CPUPlanning:
    """Mixed in before one of nnU-Net's planners: half the features per stage (16 to 256), an optional fixed batch
    size, the data in a folder of these plans' own, and no plans file written without the configurations asked for."""

    base_num_features = 16
    max_num_features = 256
    fixed_batch_size: Optional[int] = None
    required_configurations: Sequence[str] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.UNet_base_num_features = self.base_num_features
        self.UNet_max_features_2d = self.max_num_features
        self.UNet_max_features_3d = min(self.UNet_max_features_3d, self.max_num_features)

    def generate_data_identifier(self, configuration_name: str) -> str:
        """`<plans name>_<configuration>`: ResEnc planners share nnUNetPlans' folder, which preprocessing would
        delete and write again, so CPU plans never do."""
        return ExperimentPlanner.generate_data_identifier(self, configuration_name)

    def get_plans_for_configuration(self, *args, **kwargs) -> dict:
        """nnU-Net's plan for one configuration, with the batch size fixed when asked."""
        plan = super().get_plans_for_configuration(*args, **kwargs)
        if self.fixed_batch_size is not None:
            plan["batch_size"] = self.fixed_batch_size
        return plan

    def save_plans(self, plans: dict) -> None:
        """nnU-Net's save; InputError, with nothing written, when the planner made none of a required configuration."""
        missing = [c for c in self.required_configurations if c not in plans["configurations"]]
        if missing:
            plans_file = os.path.join(nnUNet_preprocessed.get(), self.dataset_name, self.plans_identifier + ".json")
            raise InputError(f"{type(self).__name__} plans no configuration {', '.join(missing)} for "
                             f"{self.dataset_name} (it plans {', '.join(plans['configurations'])}), so {plans_file} "
                             f"was not written.")
        super().save_plans(plans)


def nnunet_planner(name: str) -> Type[ExperimentPlanner]:
    """nnU-Net's planner class called `name` (as `nnUNetv2_plan_experiment -pl` finds it)."""
    import nnunetv2
    from nnunetv2.utilities.find_class_by_name import recursive_find_python_class

    planner = recursive_find_python_class(os.path.join(nnunetv2.__path__[0], "experiment_planning"), name,
                                          current_module="nnunetv2.experiment_planning")
    if not (inspect.isclass(planner) and issubclass(planner, ExperimentPlanner)):
        raise InputError(f"nnU-Net has no planner class {name!r}; use ExperimentPlanner or a ResEnc preset such as "
                         f"nnUNetPlannerResEncM, nnUNetPlannerResEncL or nnUNetPlannerResEncXL.")
    return planner


def cpu_planner(name: str = DEFAULT_PLANNER, batch_size: Optional[int] = None,
                configurations: Sequence[str] = ()) -> Type[ExperimentPlanner]:
    """nnU-Net's planner `name` at half width (`CPUPlanning`), with the batch size fixed when given, refusing to save
    plans without each of `configurations`."""
    planner = nnunet_planner(name)
    return type(f"{planner.__name__}{CPU_SUFFIX}", (CPUPlanning, planner),
                {"fixed_batch_size": batch_size, "required_configurations": tuple(configurations)})


def cpu_plans_name(planner: str = DEFAULT_PLANNER) -> str:
    """The default plans name of nnU-Net's planner `planner` with 'CPU' appended (nnUNetPlansCPU,
    nnUNetResEncUNetMPlansCPU, ...)."""
    return inspect.signature(nnunet_planner(planner).__init__).parameters["plans_name"].default + CPU_SUFFIX


def plan_and_preprocess_cpu(dataset_id: int, configurations: Sequence[str] = ("2d",), num_processes: int = 2,
                            batch_size: Optional[int] = None, plans_name: Optional[str] = None,
                            planner: str = DEFAULT_PLANNER) -> str:
    """Fingerprint (if missing), plan with nnU-Net's `planner` at half width and preprocess; returns the plans name
    (default: the planner's own plans name with 'CPU' appended)."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprint_dataset, plan_experiment_dataset, preprocess_dataset)
    from nnunetv2.utilities.dataset_name_id_conversion import convert_id_to_dataset_name

    planner_class = cpu_planner(planner, batch_size, configurations)
    plans_name = plans_name or cpu_plans_name(planner)
    try:
        dataset_name = convert_id_to_dataset_name(dataset_id)
    except RuntimeError:
        raise InputError(f"There is no dataset with ID {dataset_id} in nnUNet_raw or nnUNet_preprocessed "
                         f"({os.environ.get('nnUNet_raw')}, {os.environ.get('nnUNet_preprocessed')}).") from None
    if not os.path.isfile(os.path.join(nnUNet_preprocessed, dataset_name, "dataset_fingerprint.json")):
        extract_fingerprint_dataset(dataset_id, num_processes=num_processes, check_dataset_integrity=True,
                                    clean=True, verbose=False)
    plan_experiment_dataset(dataset_id, planner_class, overwrite_plans_name=plans_name)
    preprocess_dataset(dataset_id, plans_name, tuple(configurations), (num_processes,) * len(configurations))
    return plans_name
