"""`nnunet-ssp benchmark-speed` on the tiny phantom: the table, finite ratios, and refused settings."""

import json
import math

import pytest

from conftest import PHANTOM_DATASET_ID
from nnunet_ssp.cli import main

PLANS = "nnUNetPlansCPU"
TRAINERS = ["nnUNetTrainer", "nnUNetTrainerSSP_MIM", "nnUNetTrainerSSP_SimCLR", "nnUNetTrainerSSP_PCL",
            "nnUNetTrainerSSP_DINO"]


def _finite_ratios(ratios: dict) -> list:
    """Every ratio value (nested per trainer), checked to be a number."""
    values = []
    for value in ratios.values():
        values.extend(value.values() if isinstance(value, dict) else [value])
    assert all(isinstance(v, (int, float)) for v in values)
    return values


def test_benchmark_speed_prints_the_table_and_finite_ratios(phantom_env, tmp_path, capsys):
    cines = tmp_path / "cines"
    cines.mkdir()
    (cines / "patient002_4d.nii.gz").symlink_to(phantom_env["cines"] / "patient002" / "patient002_4d.nii.gz")
    out = tmp_path / "speed.json"
    assert main(["benchmark-speed", "-d", str(PHANTOM_DATASET_ID), "-p", PLANS, "--steps", "2", "--warmup", "1",
                 "--loader-batches", "2", "--cines", str(cines), "-np", "1", "--prepare-repeats", "1",
                 "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    table = printed[printed.index("trainer "):printed.index("targets:")]
    assert [line.split()[0] for line in table.splitlines()[1:len(TRAINERS) + 1]] == TRAINERS
    assert "prepare-unlabeled:" in printed and "frames/s against nnUNetv2_preprocess" in printed

    report = json.loads(out.read_text())
    assert set(report["trainers"]) == set(TRAINERS)
    assert all(len(t["step_wall"]) == 2 and len(t["bare_cpu"]) == 2 for t in report["trainers"].values())
    assert len({t["batch_size"] for t in report["trainers"].values()}) == 1
    ratios = report["ratios"]
    assert set(TRAINERS) < set(ratios) and "prepare_unlabeled_vs_nnUNetv2_preprocess" in ratios
    assert {"images_per_second_vs_supervised", "step_vs_bare", "loader_vs_step",
            "memory_vs_supervised"} <= set(ratios["nnUNetTrainerSSP_MIM"])
    values = _finite_ratios(ratios)
    assert len(values) >= 5 * len(TRAINERS) + 2
    assert all(math.isfinite(v) and v > 0 for v in values)
    assert ratios["nnUNetTrainer"]["images_per_second_vs_supervised"] == 1.0
    assert report["prepare_unlabeled"]["frames"] > 1
    assert {c["trainer"] for c in report["targets"]} == set(TRAINERS[1:])
    assert report["machine"]["cores"] >= 1 and len(report["machine"]["load_average_start"]) == 3


@pytest.mark.parametrize("arguments, message", [
    (["-d", "987654"], "No nnU-Net dataset with ID 987654"),
    (["-d", str(PHANTOM_DATASET_ID), "-p", "NoSuchPlans"], "NoSuchPlans.json is missing"),
    (["-d", str(PHANTOM_DATASET_ID), "-p", PLANS, "-c", "3d_lowres"], "has no configuration '3d_lowres'"),
    (["-d", str(PHANTOM_DATASET_ID), "-p", PLANS, "--steps", "0"], "--steps, --loader-batches"),
    (["-d", str(PHANTOM_DATASET_ID), "-p", PLANS, "--cines", "/no/such/folder"], "/no/such/folder is not a folder"),
])
def test_settings_that_cannot_be_measured_stop_with_one_sentence(phantom_env, capsys, arguments, message):
    assert main(["benchmark-speed", *arguments]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
