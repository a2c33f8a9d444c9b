"""Shared fixtures: small plans-built networks, and a tiny preprocessed phantom dataset for trainer tests."""

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long end-to-end runs (deselect with -m 'not slow')")


def unet_kwargs(features=(8, 16, 32), num_input_channels=1):
    """Architecture kwargs of a small 2D PlainConvUNet, in nnU-Net's plans format."""
    n = len(features)
    return {
        "n_stages": n, "features_per_stage": list(features), "conv_op": "torch.nn.modules.conv.Conv2d",
        "kernel_sizes": [[3, 3]] * n, "strides": [[1, 1]] + [[2, 2]] * (n - 1), "n_conv_per_stage": [2] * n,
        "n_conv_per_stage_decoder": [2] * (n - 1), "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm2d", "norm_op_kwargs": {"eps": 1e-5, "affine": True},
        "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    }


def build_unet(features=(8, 16, 32), num_input_channels=1, num_classes=4, **changes):
    """A plans-style PlainConvUNet built by nnU-Net's own `get_network_from_plans`, `changes` made to its kwargs."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    return get_network_from_plans(
        "dynamic_network_architectures.architectures.unet.PlainConvUNet", {**unet_kwargs(features), **changes},
        ["conv_op", "norm_op", "dropout_op", "nonlin"], num_input_channels, num_classes, allow_init=True,
        deep_supervision=False)


@pytest.fixture
def nnunet_env(tmp_path, monkeypatch):
    """nnU-Net's three data roots in tmp_path, the trainer folder on nnUNet_extTrainer, CPU-friendly workers."""
    from nnunet_ssp.environment import trainer_path
    roots = {}
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        roots[name] = tmp_path / name
        roots[name].mkdir()
        monkeypatch.setenv(name, str(roots[name]))
    monkeypatch.setenv("nnUNet_extTrainer", str(trainer_path()))
    monkeypatch.setenv("nnUNet_n_proc_DA", os.environ.get("nnUNet_n_proc_DA", "0"))
    monkeypatch.setenv("nnUNet_def_n_proc", "1")
    monkeypatch.setenv("nnUNet_compile", "false")
    return roots


PHANTOM_DATASET_ID = 501
PHANTOM_TRAIN_SUBJECTS = 6
PHANTOM_TEST_SUBJECTS = 2


@pytest.fixture(scope="session")
def phantom_roots(tmp_path_factory):
    """A tiny phantom (48 px) converted to Dataset501, planned with CPU plans and preprocessed, with its unlabeled
    pool (every frame of the training subjects' cines), once per session."""
    from nnunet_ssp.converters import convert_acdc
    from nnunet_ssp.cpu_plans import plan_and_preprocess_cpu
    from nnunet_ssp.phantom import generate_phantom
    from nnunet_ssp.unlabeled import prepare_unlabeled

    base = tmp_path_factory.mktemp("phantom")
    roots = {name: base / name for name in ("nnUNet_raw", "nnUNet_preprocessed")}
    saved = {name: os.environ.get(name) for name in (*roots, "nnUNet_def_n_proc")}
    os.environ.update({name: str(path) for name, path in roots.items()})
    os.environ["nnUNet_def_n_proc"] = "1"
    try:
        generate_phantom(base / "cines", PHANTOM_TRAIN_SUBJECTS + PHANTOM_TEST_SUBJECTS, seed=3, image_size=48)
        convert_acdc(base / "cines", PHANTOM_DATASET_ID, name="Phantom", test_subjects=PHANTOM_TEST_SUBJECTS)
        plan_and_preprocess_cpu(PHANTOM_DATASET_ID, num_processes=1)
        prepare_unlabeled(PHANTOM_DATASET_ID, base / "cines", plans_name="nnUNetPlansCPU", num_processes=1)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    roots["cines"] = base / "cines"
    return roots


@pytest.fixture
def phantom_env(phantom_roots, nnunet_env, monkeypatch):
    """nnU-Net environment pointing at the session's phantom dataset, with a fresh results folder per test."""
    for name in ("nnUNet_raw", "nnUNet_preprocessed"):
        monkeypatch.setenv(name, str(phantom_roots[name]))
    return {**phantom_roots, "nnUNet_results": nnunet_env["nnUNet_results"]}
