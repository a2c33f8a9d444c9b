"""The networks nnunet-ssp trains: nnU-Net's two U-Nets, checked in the plans and against a pretrained checkpoint."""

import sys
from typing import Optional, Sequence

from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from nnunet_ssp.checkpoint import CarriesCodeError, load_checkpoint
from nnunet_ssp.errors import InputError
from nnunet_ssp.inspection import short_class_name
from nnunet_ssp.roots import dataset_plans

ARCHITECTURES = "dynamic_network_architectures.architectures.unet."
UNET_CLASSES = (ARCHITECTURES + "PlainConvUNet", ARCHITECTURES + "ResidualEncoderUNet")


def plans_file_of(plans: dict) -> str:
    """Where nnU-Net keeps these plans: `nnUNet_preprocessed/<dataset>/<plans name>.json`."""
    return f"nnUNet_preprocessed/{plans.get('dataset_name', '?')}/{plans.get('plans_name', '?')}.json"


def unet_class_name(plans: dict, configuration: str, plans_file: Optional[str] = None) -> str:
    """The network class the plans build for `configuration`; InputError, naming `plans_file` (default: where nnU-Net
    keeps these plans), when the configuration is missing or the network is not one of nnU-Net's U-Nets."""
    plans_file = plans_file or plans_file_of(plans)
    configurations = plans.get("configurations", {})
    if configuration not in configurations:
        raise InputError(f"{plans_file} has no configuration {configuration!r} "
                         f"(it has {', '.join(configurations) or 'none'}).")
    name = PlansManager(plans).get_configuration(configuration).network_arch_class_name
    if name not in UNET_CLASSES:
        raise InputError(f"{plans_file} builds a {name} for configuration {configuration!r}, but nnunet-ssp trains "
                         f"only nnU-Net's U-Nets ({', '.join(map(short_class_name, UNET_CLASSES))}).")
    return name


def check_dataset_plans(dataset_name: str, plans_name: str, configuration: str) -> str:
    """`unet_class_name` of a dataset's plans `plans_name`; InputError when they are missing or unreadable."""
    plans_file, plans = dataset_plans(dataset_name, plans_name, configuration)
    return unet_class_name(plans, configuration, str(plans_file))


def checkpoint_class_name(checkpoint: dict) -> Optional[str]:
    """The network class a checkpoint's weights belong to: from its SSP record, else from the plans nnU-Net keeps in
    its init_args; None when it says neither."""
    ssp_name = checkpoint.get("ssp", {}).get("architecture", {}).get("network_class_name")
    if ssp_name:
        return ssp_name
    init_args = checkpoint.get("init_args", {})
    try:
        return PlansManager(init_args["plans"]).get_configuration(init_args["configuration"]).network_arch_class_name
    except (KeyError, TypeError, RuntimeError):
        return None


def check_pretrained_architecture(filename: str, network_class_name: str) -> None:
    """Refuse a checkpoint whose weights belong to another network class than `network_class_name`.

    A file carrying Python code is refused, so nnU-Net's unpickling loader never runs it; a file our safe loader
    cannot read otherwise is left to nnU-Net's own loader, which reports on it.
    """
    try:
        checkpoint = load_checkpoint(filename)
    except CarriesCodeError:
        raise
    except InputError:
        return
    found = checkpoint_class_name(checkpoint)
    if found is not None and found != network_class_name:
        found, expected = short_class_name(found), short_class_name(network_class_name)
        raise InputError(f"{filename} holds weights of a {found}, but these plans build a {expected}: pretrain with "
                         f"the same plans (-p) as the fine-tuning.")


def pretrained_weights_argument(argv: Optional[Sequence[str]] = None) -> Optional[str]:
    """The file given as `-pretrained_weights` on nnUNetv2_train's command line (default: this process's), if any."""
    argv = list(sys.argv if argv is None else argv)
    for flag, value in zip(argv, [*argv[1:], None]):
        if flag.startswith("-pretrained_weights="):
            return flag.split("=", 1)[1]
        if flag == "-pretrained_weights":
            return value
    return None
