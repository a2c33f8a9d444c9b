"""What a checkpoint holds and whether its weights fit the network some plans build, read without running its code.

nnU-Net's `-pretrained_weights` and `nnUNetv2_predict` unpickle checkpoints (`weights_only=False`); this reads them
with `weights_only=True` only, so a file carrying code is refused before anything else sees it.
"""

import os
from typing import List, Optional, Tuple

from nnunet_ssp.checkpoint import load_checkpoint, load_pretrained_parts
from nnunet_ssp.errors import InputError
from nnunet_ssp.methods.base import DECODER, ENCODER

SUPERVISED = "none (nnU-Net supervised training)"


def short_class_name(name: Optional[str]) -> Optional[str]:
    """`dynamic_network_architectures...unet.PlainConvUNet` -> `PlainConvUNet`."""
    return name.rsplit(".", 1)[-1] if name else name


def _iterations(checkpoint: dict, iterations_per_epoch: Optional[int]) -> Optional[int]:
    epochs = checkpoint.get("current_epoch")
    return epochs * iterations_per_epoch if epochs is not None and iterations_per_epoch else None


def ssp_summary(checkpoint: dict) -> dict:
    """The record of a pretraining checkpoint as a flat dict, in the order the table shows it."""
    ssp = checkpoint["ssp"]
    data = ssp.get("data", {})
    hyper = ssp.get("hyperparameters", {})
    return {
        "method": ssp.get("method"), "trainer": ssp.get("trainer", checkpoint.get("trainer_name")),
        "trained parts": ", ".join(ssp.get("trained_parts", [])),
        "architecture": short_class_name(ssp.get("architecture", {}).get("network_class_name")),
        "dataset": ssp.get("dataset_name"), "plans": ssp.get("plans_name"), "configuration": ssp.get("configuration"),
        "patch size": ssp.get("patch_size"), "spacing": ssp.get("spacing"),
        "normalisation": ssp.get("normalization_schemes"), "input channels": ssp.get("num_input_channels"),
        "subjects seen": len(data.get("subjects", [])), "slices seen": data.get("num_slices"),
        "epochs": checkpoint.get("current_epoch"),
        "iterations": _iterations(checkpoint, hyper.get("num_iterations_per_epoch")),
        "package version": ssp.get("package_version"),
    }


def supervised_summary(checkpoint: dict) -> dict:
    """What a checkpoint of nnU-Net's own trainer says about itself, from the plans it keeps in `init_args`."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    init = checkpoint.get("init_args") or {}
    summary = {"method": SUPERVISED, "trainer": checkpoint.get("trainer_name")}
    if isinstance(init.get("plans"), dict) and init.get("configuration"):
        plans = PlansManager(init["plans"])
        cm = plans.get_configuration(init["configuration"])
        channels = init.get("dataset_json", {}).get("channel_names")
        summary.update({
            "architecture": short_class_name(cm.network_arch_class_name), "dataset": plans.dataset_name,
            "plans": plans.plans_name, "configuration": init["configuration"], "patch size": list(cm.patch_size),
            "spacing": list(cm.spacing), "normalisation": list(cm.normalization_schemes),
            "input channels": len(channels) if channels else None, "fold": init.get("fold")})
    summary["epochs"] = checkpoint.get("current_epoch")
    return summary


def plans_network(dataset: str, plans_name: str, configuration: str):
    """The network nnU-Net builds for `configuration` of `plans_name` (no training), and its architecture class."""
    from batchgenerators.utilities.file_and_folder_operations import load_json
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_ssp.roots import dataset_name_of, dataset_plans

    plans_file, plans_json = dataset_plans(dataset_name_of(dataset), plans_name, configuration)
    plans = PlansManager(plans_json)
    cm = plans.get_configuration(configuration)
    dataset_json_file = str(plans_file.parent / "dataset.json")
    if not os.path.isfile(dataset_json_file):
        raise InputError(f"{dataset_json_file} does not exist; plan and preprocess the dataset first.")
    dataset_json = load_json(dataset_json_file)
    network = nnUNetTrainer.build_network_architecture(
        plans, cm, determine_num_input_channels(plans, cm, dataset_json),
        plans.get_label_manager(dataset_json).num_segmentation_heads, enable_deep_supervision=True)
    return network, short_class_name(cm.network_arch_class_name)


def check_fit(filename: str, summary: dict, dataset: str, plans_name: str, configuration: str) -> dict:
    """Whether the encoder and decoder weights of `filename` fit the network of the plans; InputError if not."""
    network, architecture = plans_network(dataset, plans_name, configuration)
    trained_on = summary.get("architecture")
    if trained_on and trained_on != architecture:
        raise InputError(f"{filename} holds a {trained_on}, but plans {plans_name} ({configuration}) of dataset "
                         f"{dataset} build a {architecture}, so its weights cannot fit.")
    keys = load_pretrained_parts(network, filename, (ENCODER, DECODER))
    return {"dataset": dataset, "plans": plans_name, "configuration": configuration, "architecture": architecture,
            "parts": [ENCODER, DECODER], "tensors": len(keys), "fits": True}


def inspect_checkpoint(filename: str, dataset: Optional[str] = None, plans_name: Optional[str] = None,
                       configuration: Optional[str] = None) -> dict:
    """The checkpoint's record and, when plans are given, the fit check; InputError for anything unsafe or wrong."""
    checkpoint = load_checkpoint(filename)
    has_ssp = isinstance(checkpoint.get("ssp"), dict)
    summary = ssp_summary(checkpoint) if has_ssp else supervised_summary(checkpoint)
    result = {"file": filename, "safe": True, "ssp_record": has_ssp, "record": summary, "fit": None}
    if dataset is not None:
        result["fit"] = check_fit(filename, summary, dataset, plans_name, configuration)
    return result


def _cell(value) -> str:
    if isinstance(value, (list, tuple)):
        return " x ".join(str(round(v, 3)) if isinstance(v, float) else str(v) for v in value) \
            if all(isinstance(v, (int, float)) for v in value) else ", ".join(map(str, value))
    return "-" if value is None else str(value)


def report_lines(result: dict) -> List[str]:
    """The inspection as a short two-column table and one verdict line."""
    rows: List[Tuple[str, str]] = [(key, _cell(value)) for key, value in result["record"].items()]
    width = max(len(key) for key, _ in rows)
    lines = [f"{result['file']}: loaded with weights_only=True (no code run)"]
    if not result["ssp_record"]:
        lines.append("No SSP record: a checkpoint of nnU-Net's own supervised trainer, not of a pretraining run.")
    lines += [f"  {key:<{width}}  {value}" for key, value in rows]
    fit = result["fit"]
    if fit:
        lines.append(f"Fits: its {' and '.join(fit['parts'])} ({fit['tensors']} tensors) load into the "
                     f"{fit['architecture']} of plans {fit['plans']} ({fit['configuration']}) of dataset "
                     f"{fit['dataset']}.")
    else:
        lines.append("Fit not checked: give -d, -p and -c to check it against the network of your plans.")
    return lines
