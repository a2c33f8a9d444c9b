"""`nnunet-ssp device-check` through the real command line: the tiny check on the CPU, a failing step, bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

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
