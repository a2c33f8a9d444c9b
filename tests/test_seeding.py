"""Seeded trainings: the wrapper seeds and records before nnU-Net's own entry point, the benchmark trains through it,
and two tiny trainings with the same seed on the CPU without augmentation workers end with identical weights."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nnunet_ssp.benchmark.grid import BASELINE, PRETRAIN, Run
from nnunet_ssp.benchmark.layout import Layout
from nnunet_ssp.benchmark.steps import train_command
from nnunet_ssp.checkpoint import load_checkpoint
from nnunet_ssp.benchmark.runner import EvaluationSet, prepare_steps
from nnunet_ssp.seeding import SEEDS_FILE, main

DATASET = "Dataset501_Phantom"


def _stop_at_help(argv):
    """Run the wrapper with nnUNetv2_train's --help after `argv`: it seeds and records, then nnU-Net exits."""
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--help"])
    assert stop.value.code == 0


def test_the_wrapper_seeds_every_generator_and_records_it_before_nnunet_starts(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("nnUNet_n_proc_DA", "1")
    seeds_file = tmp_path / SEEDS_FILE
    _stop_at_help([str(seeds_file), "5", DATASET, "2d", "0"])
    assert "Dataset name or ID to train with" in capsys.readouterr().out  # nnU-Net's own parser answered
    assert torch.initial_seed() == 5
    assert np.random.rand() == np.random.RandomState(5).rand()
    assert random.random() == random.Random(5).random()
    (record,) = json.loads(seeds_file.read_text())
    assert record["python_random"] == record["numpy"] == record["torch"] == 5
    assert record["seed_source"] == "given" and record["nnUNetv2_train"] == [DATASET, "2d", "0", "--help"]
    assert record["data_augmentation_workers"] == 1

    _stop_at_help([str(seeds_file), "random", DATASET, "2d", "0", "--c"])  # a continued training adds its seed
    first, continued = json.loads(seeds_file.read_text())
    assert first == record and continued["seed_source"] == "drawn" and torch.initial_seed() == continued["torch"]
    _stop_at_help([str(seeds_file), "random", DATASET, "2d", "0"])  # a new training starts the list again
    (again,) = json.loads(seeds_file.read_text())
    assert 0 <= again["torch"] < 2 ** 31 and again["torch"] != continued["torch"]


@pytest.mark.parametrize("seed_trainings", [True, False])
def test_benchmark_trainings_run_through_the_wrapper(tmp_path, seed_trainings):
    layout = Layout(tmp_path, "Dataset001_X", "P")
    evaluation = EvaluationSet(tmp_path / "imagesTs", tmp_path / "labelsTs", ".nii.gz")
    pretraining = Run("pretrain_mim", PRETRAIN, "mim", "nnUNetTrainerSSP_MIM_1epochs", "all")
    baseline = Run("baseline_n2_s3", BASELINE, BASELINE, "nnUNetTrainer_1epochs", 7, 2, 3)
    for run, seed in ((pretraining, "0"), (baseline, "3")):
        argv = prepare_steps(run, layout, "cpu", evaluation, seed_trainings)["train"]
        assert argv[:4] == [sys.executable, "-m", "nnunet_ssp.seeding", str(layout.run_folder(run) / SEEDS_FILE)]
        assert argv[4] == (seed if seed_trainings else "random")
        assert argv[5:] == train_command(run, layout, "cpu", None, resume=False)[1:]


def _train(results: Path, seed: str, trainer: str) -> dict:
    """One tiny training on the phantom through the wrapper; its final checkpoint."""
    env = {**os.environ, "nnUNet_results": str(results), "nnUNet_n_proc_DA": "0"}
    argv = [sys.executable, "-m", "nnunet_ssp.seeding", str(results / SEEDS_FILE), seed, DATASET, "2d", "0",
            "-p", "nnUNetPlansCPU", "-tr", trainer, "-device", "cpu"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (checkpoint,) = results.rglob("checkpoint_final.pth")
    return load_checkpoint(str(checkpoint))


@pytest.mark.slow
@pytest.mark.parametrize("trainer", ["nnUNetTrainer_1epochs_3iters", "nnUNetTrainerSSP_SimCLR_1epochs_3iters"])
def test_two_trainings_with_the_same_seed_end_with_identical_weights(tmp_path, phantom_env, trainer):
    first, second, other = (_train(tmp_path / name, seed, trainer)
                            for name, seed in (("a", "11"), ("b", "11"), ("c", "12")))
    weights = first["network_weights"]
    assert weights.keys() == second["network_weights"].keys()
    for key, value in weights.items():
        assert torch.equal(value, second["network_weights"][key]), key
    assert first["logging"]["train_losses"] == second["logging"]["train_losses"]
    assert any(not torch.equal(value, other["network_weights"][key]) for key, value in weights.items())
    assert first["logging"]["train_losses"] != other["logging"]["train_losses"]
