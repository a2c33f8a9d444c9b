"""Shared fixtures: nnU-Net's data roots in a temporary folder, and a tiny preprocessed phantom dataset for trainer
tests. Plain helpers (small networks, data builders, trainers) are in helpers.py."""

import os

import pytest

from helpers import PHANTOM_DATASET_ID, PHANTOM_TEST_SUBJECTS, PHANTOM_TRAIN_SUBJECTS, PLANS, dataset_env, session_roots


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long end-to-end runs (deselect with -m 'not slow')")


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
    with session_roots(roots):
        generate_phantom(base / "cines", PHANTOM_TRAIN_SUBJECTS + PHANTOM_TEST_SUBJECTS, seed=3, image_size=48)
        convert_acdc(base / "cines", PHANTOM_DATASET_ID, name="Phantom", test_subjects=PHANTOM_TEST_SUBJECTS)
        plan_and_preprocess_cpu(PHANTOM_DATASET_ID, num_processes=1)
        prepare_unlabeled(PHANTOM_DATASET_ID, base / "cines", plans_name=PLANS, num_processes=1)
    roots["cines"] = base / "cines"
    return roots


@pytest.fixture
def phantom_env(phantom_roots, nnunet_env, monkeypatch):
    """nnU-Net environment pointing at the session's phantom dataset, with a fresh results folder per test."""
    return dataset_env(phantom_roots, nnunet_env, monkeypatch)
