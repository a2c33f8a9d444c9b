"""`nnunet-ssp inspect` through the real CLI: safe loading, the record, and the fit against Plain and ResEnc plans."""

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import PHANTOM_DATASET_ID, PLANS, make_trainer, session_roots

CPU_PLANS = PLANS
RESENC_PLANS = "nnUNetResEncUNetMPlans"
DATASET = str(PHANTOM_DATASET_ID)


@pytest.fixture(scope="module")
def resenc_preprocessed(phantom_roots, tmp_path_factory):
    """A copy of the phantom's preprocessed folder (json files only) with ResEnc M plans from nnU-Net's planner."""
    from nnunetv2.experiment_planning.experiment_planners.residual_unets.residual_encoder_unet_planners import \
        nnUNetPlannerResEncM
    from nnunetv2.experiment_planning.plan_and_preprocess_api import plan_experiment_dataset

    source = next(Path(phantom_roots["nnUNet_preprocessed"]).glob(f"Dataset{PHANTOM_DATASET_ID:03d}_*"))
    root = tmp_path_factory.mktemp("resenc_preprocessed")
    (root / source.name).mkdir()
    for file in source.glob("*.json"):
        shutil.copy(file, root / source.name / file.name)
    with session_roots({"nnUNet_raw": phantom_roots["nnUNet_raw"], "nnUNet_preprocessed": root, "nnUNet_n_proc_DA": 1}):
        plan_experiment_dataset(PHANTOM_DATASET_ID, nnUNetPlannerResEncM)
    assert (root / source.name / f"{RESENC_PLANS}.json").is_file()
    return root


def supervised_checkpoint(plans: str, filename: Path) -> Path:
    """A checkpoint written by nnU-Net's own trainer's `save_checkpoint` (untrained network, numpy in its logs)."""
    from nnunetv2.run.run_training import get_trainer_from_args
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    trainer = get_trainer_from_args(DATASET, "2d", 0, "nnUNetTrainer", plans, device=torch.device("cpu"))
    trainer.network = trainer.build_network_architecture(
        trainer.plans_manager, trainer.configuration_manager,
        determine_num_input_channels(trainer.plans_manager, trainer.configuration_manager, trainer.dataset_json),
        trainer.label_manager.num_segmentation_heads, True)
    trainer.optimizer, trainer.lr_scheduler = trainer.configure_optimizers()
    trainer._best_ema = np.float64(0.42)
    trainer.save_checkpoint(str(filename))
    return filename


@pytest.fixture(scope="module")
def checkpoints(phantom_roots, resenc_preprocessed, tmp_path_factory):
    """A real MIM pretraining checkpoint (1 epoch of 1 iteration) and nnU-Net supervised checkpoints of the
    phantom's CPU plans and of its ResEnc M plans."""
    from nnunet_ssp.environment import trainer_path

    out = tmp_path_factory.mktemp("inspect_checkpoints")
    env = dict(nnUNet_raw=phantom_roots["nnUNet_raw"], nnUNet_preprocessed=phantom_roots["nnUNet_preprocessed"],
               nnUNet_results=out / "results", nnUNet_extTrainer=trainer_path(), nnUNet_n_proc_DA=0,
               nnUNet_def_n_proc=1, nnUNet_compile="false")
    with session_roots(env):
        trainer = make_trainer("nnUNetTrainerSSP_MIM_1epochs_1iters")
        trainer.run_training()
        plain = supervised_checkpoint(CPU_PLANS, out / "supervised_plain.pth")
    with session_roots({**env, "nnUNet_preprocessed": resenc_preprocessed}):
        resenc = supervised_checkpoint(RESENC_PLANS, out / "supervised_resenc.pth")
    return {"mim": Path(trainer.output_folder) / "checkpoint_final.pth", "plain": plain, "resenc": resenc}


def inspect(capsys, *argv):
    """Run `nnunet-ssp inspect` through the real CLI; returns the exit code, stdout and stderr."""
    from nnunet_ssp.cli import main
    code = main(["inspect", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def plain_env(phantom_roots, monkeypatch):
    monkeypatch.setenv("nnUNet_raw", str(phantom_roots["nnUNet_raw"]))
    monkeypatch.setenv("nnUNet_preprocessed", str(phantom_roots["nnUNet_preprocessed"]))


@pytest.fixture
def resenc_env(phantom_roots, resenc_preprocessed, monkeypatch):
    monkeypatch.setenv("nnUNet_raw", str(phantom_roots["nnUNet_raw"]))
    monkeypatch.setenv("nnUNet_preprocessed", str(resenc_preprocessed))


class Payload:
    """Unpickling this creates the file `path`: what a checkpoint carrying code could do."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return os.makedirs, (str(self.path),)


def test_a_checkpoint_carrying_code_is_refused_and_the_code_never_runs(tmp_path, capsys):
    marker = tmp_path / "created_by_the_checkpoint"
    evil = tmp_path / "evil.pth"
    torch.save({"network_weights": {}, "trainer_name": "nnUNetTrainer", "payload": Payload(marker)}, evil)
    code, out, err = inspect(capsys, evil)
    assert code == 2 and not marker.exists()
    assert str(evil) in err and "os.makedirs" in err and "weights_only" in err and err.count("\n") == 1
    torch.load(evil, weights_only=False)  # the payload is real: an unpickling loader runs it
    assert marker.is_dir()


def test_truncated_directory_and_state_dict_files_are_refused_with_one_sentence(checkpoints, tmp_path, capsys):
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(checkpoints["mim"].read_bytes()[:5000])
    state_dict = tmp_path / "state_dict.pth"
    torch.save(torch.load(checkpoints["mim"], weights_only=True)["network_weights"], state_dict)
    foreign = tmp_path / "notes.pth"
    foreign.write_text("not a checkpoint")
    for file, reason in [(truncated, "not a readable checkpoint"), (tmp_path, "is a directory"),
                         (state_dict, "no 'network_weights'"), (foreign, "not a readable checkpoint"),
                         (tmp_path / "missing.pth", "does not exist")]:
        code, out, err = inspect(capsys, file)
        assert code == 2 and out == "", file
        assert str(file) in err and reason in err and err.count("\n") == 1, err


def test_a_pretraining_checkpoint_shows_its_record_and_fits_its_plans(checkpoints, plain_env, capsys):
    code, out, err = inspect(capsys, checkpoints["mim"], "-d", DATASET, "-p", CPU_PLANS, "-c", "2d")
    assert code == 0, err
    rows = dict(re.match(r"  (.+?)\s{2,}(.*)$", line).groups() for line in out.splitlines()[1:-1])
    assert rows["method"] == "mim" and rows["architecture"] == "PlainConvUNet"
    assert rows["plans"] == CPU_PLANS and rows["iterations"] == "1"
    assert rows["subjects seen"] == "6" and int(rows["slices seen"]) > 0
    assert out.splitlines()[-1].startswith("Fits: its encoder and decoder")


def test_json_output_parses_and_counts_the_fitting_tensors(checkpoints, plain_env, capsys):
    code, out, _ = inspect(capsys, checkpoints["mim"], "-d", DATASET, "-p", CPU_PLANS, "--json")
    result = json.loads(out)
    weights = torch.load(checkpoints["mim"], weights_only=True)["network_weights"]
    fitting = [k for k in weights if k.startswith(("encoder.", "decoder.")) and ".seg_layers." not in k]
    assert code == 0 and result["ssp_record"] and result["record"]["method"] == "mim"
    assert len(result["record"]["patch size"]) == 2 and result["record"]["input channels"] == 1
    assert result["fit"]["fits"] and result["fit"]["tensors"] == len(fitting)


def test_a_supervised_nnunet_checkpoint_is_named_as_such_and_still_checked(checkpoints, plain_env, capsys):
    code, out, err = inspect(capsys, checkpoints["plain"], "-d", DATASET, "-p", CPU_PLANS, "-c", "2d")
    assert code == 0, err
    assert "No SSP record" in out and "nnU-Net's own supervised trainer" in out
    assert "nnUNetTrainer" in out and "PlainConvUNet" in out and out.splitlines()[-1].startswith("Fits:")


def test_resenc_weights_fit_resenc_plans(checkpoints, resenc_env, capsys):
    code, out, err = inspect(capsys, checkpoints["resenc"], "-d", DATASET, "-p", RESENC_PLANS, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["record"]["architecture"] == result["fit"]["architecture"] == "ResidualEncoderUNet"
    assert result["fit"]["tensors"] > 0


def test_plain_weights_against_resenc_plans_name_both_architectures(checkpoints, resenc_env, capsys):
    code, out, err = inspect(capsys, checkpoints["mim"], "-d", DATASET, "-p", RESENC_PLANS)
    assert code == 2 and out == ""
    assert str(checkpoints["mim"]) in err and "PlainConvUNet" in err and "ResidualEncoderUNet" in err
    assert err.count("\n") == 1


def test_a_mismatching_tensor_is_named_with_both_shapes(checkpoints, plain_env, tmp_path, capsys):
    checkpoint = torch.load(checkpoints["mim"], weights_only=True)
    key = "encoder.stages.0.0.convs.0.conv.weight"
    shape = tuple(checkpoint["network_weights"][key].shape)
    checkpoint["network_weights"][key] = torch.zeros(shape[0], 2, *shape[2:])  # two input channels
    other = tmp_path / "two_channels.pth"
    torch.save(checkpoint, other)
    code, out, err = inspect(capsys, other, "-d", DATASET, "-p", CPU_PLANS)
    assert code == 2 and out == ""
    assert str(other) in err and key in err and str((shape[0], 2, *shape[2:])) in err and str(shape) in err


def test_missing_plans_and_plans_without_a_dataset_are_refused(checkpoints, plain_env, capsys):
    code, out, err = inspect(capsys, checkpoints["mim"], "-d", DATASET, "-p", "nnUNetPlansNone")
    assert code == 2 and "nnUNetPlansNone.json is missing" in err and err.count("\n") == 1
    code, out, err = inspect(capsys, checkpoints["mim"], "-p", CPU_PLANS)
    assert code == 2 and "give -d" in err


def test_an_unknown_dataset_unset_roots_and_a_missing_dataset_json_are_named(checkpoints, plain_env, tmp_path,
                                                                            monkeypatch, capsys):
    code, out, err = inspect(capsys, checkpoints["mim"], "-d", "foo", "-p", CPU_PLANS)
    assert code == 2 and "No nnU-Net dataset with ID foo exists" in err and err.count("\n") == 1
    name = f"Dataset{PHANTOM_DATASET_ID}_Phantom"
    source = Path(os.environ["nnUNet_preprocessed"]) / name
    monkeypatch.delenv("nnUNet_preprocessed")
    code, out, err = inspect(capsys, checkpoints["mim"], "-d", DATASET, "-p", CPU_PLANS)
    assert code == 2 and "nnUNet_preprocessed is not set" in err and err.count("\n") == 1
    (tmp_path / name).mkdir()
    shutil.copy(source / f"{CPU_PLANS}.json", tmp_path / name)  # the plans without dataset.json
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path))
    code, out, err = inspect(capsys, checkpoints["mim"], "-d", DATASET, "-p", CPU_PLANS)
    assert code == 2 and f"{tmp_path / name / 'dataset.json'} does not exist" in err and err.count("\n") == 1
