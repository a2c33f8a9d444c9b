"""End to end through nnU-Net's own commands in subprocesses: plan, pretrain, fine-tune, predict, evaluate."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DATASET_ID = 511


def run(*command: str) -> str:
    """Run a console script of this environment; fail the test with its output if it fails."""
    script = Path(sys.executable).parent / command[0]
    command = (str(script) if script.exists() else command[0], *command[1:])
    result = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def planned_dataset(tmp_path_factory):
    """Phantom -> convert-acdc -> nnUNetv2_plan_and_preprocess (nnU-Net's default plans), once for this module."""
    base = tmp_path_factory.mktemp("e2e")
    env = {name: str(base / name) for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    saved = {k: os.environ.get(k) for k in (*env, "nnUNet_extTrainer", "nnUNet_def_n_proc", "nnUNet_n_proc_DA")}
    os.environ.update(env)
    os.environ["nnUNet_extTrainer"] = run("nnunet-ssp", "trainer-path").strip()
    os.environ["nnUNet_def_n_proc"] = "1"
    os.environ["nnUNet_n_proc_DA"] = "1"
    run("nnunet-ssp", "synth", "-o", str(base / "cines"), "-n", "8", "--seed", "5", "--size", "48")
    run("nnunet-ssp", "convert-acdc", "-i", str(base / "cines"), "-d", str(DATASET_ID), "--name", "E2E",
        "--test-subjects", "2")
    run("nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "2d", "-np", "1", "-npfp", "1")
    yield base
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def results_folder(trainer: str) -> Path:
    return Path(os.environ["nnUNet_results"]) / "Dataset511_E2E" / f"{trainer}__nnUNetPlans__2d"


@pytest.mark.slow
def test_mim_pretrain_finetune_predict_evaluate(planned_dataset):
    pretrainer, finetuner = "nnUNetTrainerSSP_MIM_2epochs_5iters", "nnUNetTrainerSSPFinetune_2epochs_5iters"
    run("nnUNetv2_train", str(DATASET_ID), "2d", "all", "-tr", pretrainer, "-device", "cpu")
    checkpoint = results_folder(pretrainer) / "fold_all" / "checkpoint_final.pth"
    assert json.loads((checkpoint.parent / "ssp_summary.json").read_text())["epochs"] == 2
    run("nnUNetv2_train", str(DATASET_ID), "2d", "0", "-tr", finetuner, "-device", "cpu",
        "-pretrained_weights", str(checkpoint))
    validation = json.loads((results_folder(finetuner) / "fold_0" / "validation" / "summary.json").read_text())
    assert 0.0 <= validation["foreground_mean"]["Dice"] <= 1.0
    raw = Path(os.environ["nnUNet_raw"]) / "Dataset511_E2E"
    predictions = planned_dataset / "predictions"
    run("nnUNetv2_predict", "-i", str(raw / "imagesTs"), "-o", str(predictions), "-d", str(DATASET_ID), "-c", "2d",
        "-f", "0", "-tr", finetuner, "-chk", "checkpoint_final.pth", "-device", "cpu", "-npp", "1", "-nps", "1")
    assert len(list(predictions.glob("*.nii.gz"))) == len(list((raw / "labelsTs").glob("*.nii.gz"))) == 4
    run("nnUNetv2_evaluate_folder", str(raw / "labelsTs"), str(predictions), "-djfile",
        str(results_folder(finetuner) / "dataset.json"), "-pfile", str(results_folder(finetuner) / "plans.json"),
        "-np", "1")
    summary = json.loads((predictions / "summary.json").read_text())
    assert set(summary["mean"]) == {"1", "2", "3"} and len(summary["metric_per_case"]) == 4


@pytest.mark.slow
@pytest.mark.parametrize("method", ["SimCLR", "PCL", "DINO", "MIM"])
def test_each_method_pretrains_one_epoch_and_fine_tunes_through_nnunet(planned_dataset, method):
    pretrainer = f"nnUNetTrainerSSP_{method}_1epochs_3iters"
    run("nnUNetv2_train", str(DATASET_ID), "2d", "all", "-tr", pretrainer, "-device", "cpu")
    checkpoint = results_folder(pretrainer) / "fold_all" / "checkpoint_final.pth"
    run("nnUNetv2_train", str(DATASET_ID), "2d", "1", "-tr", "nnUNetTrainerSSPFinetune_1epochs_3iters", "-device",
        "cpu", "-pretrained_weights", str(checkpoint))
    assert (results_folder("nnUNetTrainerSSPFinetune_1epochs_3iters") / "fold_1" / "checkpoint_final.pth").is_file()


@pytest.mark.slow
def test_demo_runs_the_whole_question_on_the_phantom(tmp_path, monkeypatch):
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("nnUNet_def_n_proc", "1")
    out = tmp_path / "demo"
    printed = run("nnunet-ssp", "demo", "--out", str(out), "--epochs", "1", "--iters", "2")
    assert "| baseline |" in printed and "| mim |" in printed
    for name in ("results.csv", "report.md", "dice_vs_subjects.png", "predictions.png"):
        assert (out / "benchmark" / name).is_file(), name
    again = run("nnunet-ssp", "demo", "--out", str(out), "--epochs", "1", "--iters", "2")
    assert "0 to do" in again
