"""`nnunet-ssp benchmark-speed` on the tiny phantom: the table, finite ratios, and refused settings."""

import json
import math

import pytest

from helpers import PHANTOM_DATASET_ID, PLANS
from nnunet_ssp.cli import main

TRAINERS = ["nnUNetTrainer", "nnUNetTrainerSSP_SimCLR", "nnUNetTrainerSSP_PCL", "nnUNetTrainerSSP_DINO",
            "nnUNetTrainerSSP_MIM"]  # nnU-Net's, then the methods in registry order


def _finite_ratios(ratios: dict) -> list:
    """Every ratio value (nested per trainer), checked to be a number."""
    values = []
    for value in ratios.values():
        values.extend(value.values() if isinstance(value, dict) else [value])
    assert all(isinstance(v, (int, float)) for v in values)
    return values


def _run_benchmark(out, *extra) -> None:
    """Run the command with few steps on the phantom, writing its JSON to `out`."""
    assert main(["benchmark-speed", "-d", str(PHANTOM_DATASET_ID), "-p", PLANS, "--steps", "2", "--warmup", "1",
                 "--loader-batches", "2", "--json", str(out), *extra]) == 0


def test_benchmark_speed_prints_the_table_and_finite_ratios(phantom_env, tmp_path, capsys):
    _run_benchmark(tmp_path / "speed.json", "--skip-prepare")
    printed = capsys.readouterr().out
    table = printed[printed.index("trainer "):printed.index("targets:")]
    assert [line.split()[0] for line in table.splitlines()[1:len(TRAINERS) + 1]] == TRAINERS
    assert "prepare-unlabeled" not in printed
    assert list(phantom_env["nnUNet_results"].iterdir()) == []  # the trainers' log files are cleaned up

    report = json.loads((tmp_path / "speed.json").read_text())
    assert set(report["trainers"]) == set(TRAINERS)
    assert all(len(t["step_wall"]) == 2 and len(t["bare_cpu"]) == 2 for t in report["trainers"].values())
    assert len({t["batch_size"] for t in report["trainers"].values()}) == 1
    ratios = report["ratios"]
    assert set(ratios) == set(TRAINERS)
    assert {"images_per_second_vs_supervised", "step_vs_bare", "loader_vs_step", "loader_vs_step_cpu",
            "memory_vs_supervised"} <= set(ratios["nnUNetTrainerSSP_MIM"])
    values = _finite_ratios(ratios)
    assert len(values) >= 7 * len(TRAINERS)
    assert all(math.isfinite(v) and v > 0 for v in values)
    assert ratios["nnUNetTrainer"]["images_per_second_vs_supervised"] == 1.0
    assert {c["trainer"] for c in report["targets"]} == set(TRAINERS[1:])
    assert report["machine"]["cores"] >= 1 and len(report["machine"]["load_average_start"]) == 3


@pytest.mark.slow
def test_benchmark_speed_times_prepare_unlabeled_against_nnunet(phantom_env, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("nnUNet_n_proc_DA", "1")  # nnU-Net's planner crashes on 0 (torch.set_num_threads(0))
    cines = tmp_path / "cines"
    cines.mkdir()
    (cines / "patient002_4d.nii.gz").symlink_to(phantom_env["cines"] / "patient002" / "patient002_4d.nii.gz")
    _run_benchmark(tmp_path / "speed.json", "--methods", "mim", "--cines", str(cines), "-np", "1",
                   "--prepare-repeats", "1")
    assert "frames/s against nnUNetv2_preprocess" in capsys.readouterr().out
    report = json.loads((tmp_path / "speed.json").read_text())
    assert report["prepare_unlabeled"]["frames"] > 1
    assert all(math.isfinite(v) and v > 0 for v in _finite_ratios(report["ratios"]))
    assert "prepare_unlabeled_vs_nnUNetv2_preprocess" in report["ratios"]


def test_ratios_are_medians_of_paired_rounds_and_targets_follow_the_clock():
    from nnunet_ssp.speed import SpeedReport, TrainerResult

    def result(name, method, steps, bares, added):
        return TrainerResult(name, method, "1", 4, [8, 8], 2, 20.0, 0.05, 0.0, added, None, step_wall=steps,
                             step_cpu=[s / 2 for s in steps], bare_wall=bares, bare_cpu=[b / 2 for b in bares])

    settings = {"dataset": "D", "configuration": "2d", "plans": "P", "fold": 0, "steps": 3, "warmup": 0,
                "loader_batches": 1, "clock": "wall", "idle_rss_mib": 100.0}
    # the machine slows down tenfold in the third round; paired ratios ignore it
    sup = result("nnUNetTrainer", "supervised", [1.0, 1.0, 10.0], [0.9, 0.9, 9.0], 50.0)
    mim = result("nnUNetTrainerSSP_MIM", "mim", [1.25, 1.25, 12.5], [1.0, 1.0, 10.0], 100.0)
    machine = {"cpu_model": "x", "cores": 2, "torch": "t", "torch_threads": 1, "device": "cpu",
               "load_average_start": (1, 1, 1), "load_average_end": (1, 1, 1)}
    report = SpeedReport(machine, settings, [sup, mim])
    ratios = report.ratios()["nnUNetTrainerSSP_MIM"]
    assert ratios["step_vs_bare"] == pytest.approx(1.25)
    assert ratios["images_per_second_vs_supervised"] == pytest.approx(0.8)
    assert ratios["loader_vs_step"] == pytest.approx(20.0 * 1.25)
    assert ratios["loader_vs_step_cpu"] == pytest.approx(0.625 * 2 / 0.05)
    assert ratios["memory_vs_supervised"] == pytest.approx(200 / 150)
    missed = {c["ratio"] for c in report.targets() if not c["met"]}
    assert missed == {"step_vs_bare", "images_per_second_vs_supervised", "memory_vs_supervised"}
    report.settings["clock"] = "cpu"
    assert {c["ratio"] for c in report.targets()} >= {"step_vs_bare_cpu", "loader_vs_step_cpu"}
    assert "MISSED  nnUNetTrainerSSP_MIM: step_vs_bare_cpu = 1.25" in report.table()


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
