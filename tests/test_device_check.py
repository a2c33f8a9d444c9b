"""`nnunet-ssp device-check` through the real command line: the tiny check on the CPU, a failing step, bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nnunet_ssp.methods import method_names

STEPS = ["phantom dataset", *(f"pretrain {m}" for m in method_names()), "fine-tune from mim", "predict and evaluate",
         "benchmark-speed"]


def device_check(out: Path, *options: str) -> subprocess.CompletedProcess:
    # nnUNet_n_proc_DA=0 would break nnU-Net's planner (it sets torch's threads to that number)
    env = {**os.environ, "nnUNet_def_n_proc": "1", "nnUNet_n_proc_DA": "1"}
    return subprocess.run([str(Path(sys.executable).parent / "nnunet-ssp"), "device-check", "--out", str(out),
                           *options], env=env, capture_output=True, text=True, timeout=1200)


def test_tiny_check_on_the_cpu_does_every_step_and_ends_with_the_table(tmp_path):
    result = device_check(tmp_path / "check", "-device", "cpu", "--tiny")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    record = json.loads((tmp_path / "check" / "device_check.json").read_text())
    assert [s["name"] for s in record["steps"]] == STEPS and record["failure"] is None
    assert all(s["ok"] and s["peak_cuda_mib"] is None for s in record["steps"])
    table = result.stdout[result.stdout.rindex("nnunet-ssp device-check on cpu"):].splitlines()
    assert [line.split("  ")[0] for line in table[2:]] == STEPS
    assert all(" ok " in line and " n/a " in line for line in table[2:])
    notes = {s["name"]: s["note"] for s in record["steps"]}
    assert "mean Dice" in notes["predict and evaluate"] and "mim img/s x" in notes["benchmark-speed"]


def test_a_failing_step_is_named_and_the_exit_code_is_not_zero(tmp_path):
    out = tmp_path / "check"
    out.mkdir()
    (out / "cines").write_text("a file where the phantom's folder should be")
    result = device_check(out, "-device", "cpu", "--tiny")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(
        "nnunet-ssp device-check: step 'phantom dataset' failed:")
    record = json.loads((out / "device_check.json").read_text())
    assert [(s["name"], s["ok"]) for s in record["steps"]] == [("phantom dataset", False)]
    assert (out / "cines").read_text().startswith("a file")


def test_more_gpus_than_visible_are_refused_before_anything_is_written(tmp_path):
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    result = device_check(tmp_path / "check", "-device", "cuda", "-num_gpus", str(available + 1))
    assert result.returncode == 2
    assert (f"-num_gpus asks for {available + 1} CUDA process" in result.stderr
            and "visible" in result.stderr.splitlines()[-1])
    assert not (tmp_path / "check").exists()


def test_the_step_on_several_processes_launches_torchrun_with_nnunet_training(tmp_path, nnunet_env):
    from nnunet_ssp.benchmark.runner import RunFailedError
    from nnunet_ssp.device_check import TINY, _pretrain_on_processes

    # no phantom in these roots: torchrun starts nnUNetv2_train on 2 processes, which stop for the missing dataset
    with pytest.raises(RunFailedError, match="pretraining on 2 processes exited with code"):
        _pretrain_on_processes(TINY, "cpu", 2, tmp_path)
    command = (tmp_path / "processes.log").read_text().splitlines()[0]
    assert "torchrun --standalone --nproc-per-node 2" in command and "nnUNetv2_train" in command
    assert "-tr nnUNetTrainerSSP_MIM_2epochs_2iters" in command and "-device cpu" in command


@pytest.mark.slow
def test_pretraining_on_two_cpu_processes_writes_the_final_checkpoint(tmp_path, monkeypatch):
    from nnunet_ssp.demo import demo_environment, prepare_demo_dataset
    from nnunet_ssp.device_check import TINY, _pretrain_on_processes
    from nnunet_ssp.environment import environment_exports

    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_n_proc_DA", "nnUNet_def_n_proc"):
        monkeypatch.setenv(name, "1")  # so that what demo_environment sets is undone after the test
    demo_environment(tmp_path)
    monkeypatch.setenv("nnUNet_n_proc_DA", "1")  # 0 would break nnU-Net's planner, as above
    monkeypatch.setenv("nnUNet_def_n_proc", "1")
    monkeypatch.setenv("nnUNet_compile", "false")
    monkeypatch.setenv("nnUNet_extTrainer", environment_exports()["nnUNet_extTrainer"])
    prepare_demo_dataset(tmp_path, TINY.phantom, TINY.plans)
    note = _pretrain_on_processes(TINY, "cpu", 2, tmp_path)
    assert note.startswith("nnUNetTrainerSSP_MIM_2epochs_2iters on 2 processes")
    folds = list((tmp_path / "results_processes").glob("*/*__2d/fold_0"))
    assert len(folds) == 1 and (folds[0] / "checkpoint_final.pth").is_file()
