"""Pretraining, fine-tuning and the unlabeled pool on nnU-Net's 3d_fullres configuration of the phantom."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import PLANS, dataset_env, session_roots

DATASET_ID = 502  # a 32 px phantom planned and preprocessed for 2d and 3d_fullres, only for this module
CONFIGURATION = "3d_fullres"


@pytest.fixture(scope="module")
def three_d_roots(tmp_path_factory):
    """A 32 px phantom of 6 training and 1 test subject, CPU plans preprocessed for 2d and 3d_fullres."""
    from nnunet_ssp.converters import convert_acdc
    from nnunet_ssp.cpu_plans import plan_and_preprocess_cpu
    from nnunet_ssp.phantom import generate_phantom

    base = tmp_path_factory.mktemp("phantom3d")
    roots = {name: base / name for name in ("nnUNet_raw", "nnUNet_preprocessed")}
    with session_roots(roots):
        generate_phantom(base / "cines", 7, seed=5, image_size=32, progress=False)
        convert_acdc(base / "cines", DATASET_ID, name="Phantom3d", test_subjects=1)
        plan_and_preprocess_cpu(DATASET_ID, ("2d", CONFIGURATION), num_processes=1)
    roots["cines"] = base / "cines"
    return roots


@pytest.fixture
def three_d_env(three_d_roots, nnunet_env, monkeypatch):
    return dataset_env(three_d_roots, nnunet_env, monkeypatch)


def _preprocessed(env) -> Path:
    return next(Path(env["nnUNet_preprocessed"]).glob(f"Dataset{DATASET_ID}_*"))


def _trainer(name: str, fold="all"):
    from nnunetv2.run.run_training import get_trainer_from_args
    return get_trainer_from_args(str(DATASET_ID), CONFIGURATION, fold, name, PLANS, device=torch.device("cpu"))


def _renamed_plans(preprocessed: Path, name: str) -> None:
    """A copy of the plans as `name`, whose configurations' data identifiers name no preprocessed folder yet."""
    plans = json.loads((preprocessed / f"{PLANS}.json").read_text())
    plans["plans_name"] = name
    for configuration in plans["configurations"].values():
        configuration["data_identifier"] = configuration["data_identifier"].replace(PLANS, name)
    (preprocessed / f"{name}.json").write_text(json.dumps(plans))


def _cli(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nnunet_ssp.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def _only_the_lock(out: Path) -> bool:
    """Whether a refused benchmark left nothing in its output folder but its lock."""
    from nnunet_ssp.locking import LOCK_FILE
    return not out.exists() or [p.name for p in out.iterdir()] == [LOCK_FILE]


def _reference_mask_cells(mask: torch.Tensor, cells_per_axis) -> torch.Tensor:
    """Slow reference: the value of every cell (cell i of an axis of n voxels and c cells holds the voxels v with
    v * c // n == i), asserting the mask is constant inside it."""
    def bounds(i, size, count):
        return -(-i * size // count), -(-(i + 1) * size // count)

    values = torch.empty(cells_per_axis, dtype=torch.bool)
    for index in np.ndindex(*cells_per_axis):
        block = mask[tuple(slice(*bounds(i, n, c)) for i, n, c in zip(index, mask.shape, cells_per_axis))]
        assert block.numel() > 0 and (block == block.flatten()[0]).all()
        values[index] = block.flatten()[0]
    return values


@pytest.mark.parametrize("shape, grid, ratio, cells", [
    ((4, 32, 32), 8, 0.5, (4, 8, 8)),     # few slices: one cell per slice along the slice axis
    ((3, 24, 16), 4, 0.75, (3, 4, 4)),
    ((16, 32, 32), 4, 0.6, (4, 4, 4)),    # enough slices: the grid along every axis
    ((12, 32, 32), 8, 0.5, (8, 8, 8)),    # the phantom's 3d_fullres patch: cells of 1 or 2 slices
])
def test_3d_grid_mask_masks_exactly_the_ratio_of_cells_each_whole(shape, grid, ratio, cells):
    from nnunet_ssp.methods.mim import grid_cells, grid_mask

    assert grid_cells(shape, grid) == cells
    mask = grid_mask(6, shape, grid, ratio, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (6, 1, *shape) and mask.dtype == torch.bool
    expected = int(round(ratio * np.prod(cells)))
    per_sample = [_reference_mask_cells(mask[b, 0], cells) for b in range(6)]
    assert [int(v.sum()) for v in per_sample] == [expected] * 6
    assert len({tuple(v.flatten().tolist()) for v in per_sample}) == 6  # each image its own mask
    if shape[0] < grid:  # whole slices of cells: every slice has its own in-plane pattern
        assert all(len({tuple(v[z].flatten().tolist()) for z in range(shape[0])}) > 1 for v in per_sample)


def test_3d_grid_mask_rejects_a_grid_finer_than_the_plane():
    from nnunet_ssp.methods.mim import grid_mask

    with pytest.raises(ValueError, match="grid must lie in"):
        grid_mask(1, (4, 6, 32), 8)
    with pytest.raises(ValueError, match="2D or 3D patch"):
        grid_mask(1, (4, 4, 32, 32), 2)


def test_pooling_averages_a_3d_feature_map_over_its_three_spatial_axes():
    from nnunet_ssp.methods.heads import global_average_pool

    feature_map = torch.randn(2, 3, 4, 5, 6)
    assert torch.allclose(global_average_pool(feature_map), feature_map.flatten(2).mean(dim=2))


def test_a_patch_with_few_slices_is_augmented_in_plane_keeping_its_slices():
    from nnunet_ssp.views import in_plane_only, ssp_view

    assert in_plane_only((4, 32, 32)) and not in_plane_only((12, 32, 32)) and not in_plane_only((32, 32))
    view = ssp_view((4, 32, 32), (-np.pi, np.pi), (0, 1, 2))
    assert view(image=torch.randn(1, 4, 48, 48))["image"].shape == (1, 4, 32, 32)
    local = ssp_view((2, 16, 16), (-np.pi, np.pi), (0, 1, 2))  # DINO's local crop: whole slices, half the plane
    assert local(image=torch.randn(1, 4, 32, 32))["image"].shape == (1, 4, 16, 16)
    assert ssp_view((12, 32, 32), (-0.5, 0.5), (0, 1, 2))(image=torch.randn(1, 16, 48, 48))["image"].shape == (
        1, 12, 32, 32)


def test_positions_follow_nnunets_crop_and_resampling_of_the_slice_axis():
    from nnunet_ssp.slices import original_slice_indices

    assert np.array_equal(original_slice_indices((2, 7), 5), [2, 3, 4, 5, 6])  # 2d: crop only
    # 3d_fullres resampled 10 cropped slices (original 1..10) to 5: each stored slice covers two original ones
    assert np.allclose(original_slice_indices((1, 11), 5), [1.5, 3.5, 5.5, 7.5, 9.5])


def test_3d_volume_table_and_patch_loader_draw_whole_volumes_positioned_at_the_patch_centre(three_d_env):
    from nnunet_ssp.slice_loader import SSPPatchLoader, patch_loader
    from nnunet_ssp.slices import VolumeTable

    trainer = _trainer("nnUNetTrainerSSP_SimCLR_1epochs_2iters")
    trainer.initialize()
    train, _ = trainer.get_slice_tables()
    volumes = VolumeTable(train)
    assert len(volumes) == len(set(train.case)) and sorted(set(volumes.subject)) == train.subjects()
    for row in range(len(volumes)):  # every stored slice once, in order, positions running one way
        zs = [train.z[r] for r in volumes.rows[row]]
        assert zs == list(range(len(zs)))
        positions = [volumes.position(row, z) for z in range(len(zs))]
        assert np.all(np.diff(positions) > 0) or np.all(np.diff(positions) < 0)
        assert volumes.position(row, -3) == positions[0] and volumes.position(row, 99) == positions[-1]
    patch = trainer.configuration_manager.patch_size
    loader = patch_loader(train, 2, patch, patch, trainer.label_manager, [lambda image: {"image": image}])
    assert isinstance(loader, SSPPatchLoader)
    batch = loader.generate_train_batch()
    assert batch["views"][0].shape == (2, 1, *patch)
    assert ((batch["positions"] >= 0) & (batch["positions"] <= 1)).all()


def test_mim_pretrains_on_3d_fullres_and_a_finetune_starts_from_it(three_d_env):
    from nnunetv2.run.load_pretrained_weights import load_pretrained_weights

    trainer = _trainer("nnUNetTrainerSSP_MIM_1epochs_2iters")
    trainer.run_training()
    trainer.perform_actual_validation()
    folder = Path(trainer.output_folder)
    assert "3d_fullres" in folder.parent.name
    checkpoint = torch.load(folder / "checkpoint_final.pth", weights_only=True, map_location="cpu")
    ssp = checkpoint["ssp"]
    assert ssp["configuration"] == CONFIGURATION and list(ssp["patch_size"]) == [12, 32, 32]
    assert np.isfinite(json.loads((folder / "ssp_summary.json").read_text())["final_val_loss"])
    assert (folder / "ssp_visuals" / "epoch_0000.png").is_file()
    finetune = _trainer("nnUNetTrainerSSPFinetune_1epochs_2iters", fold=0)
    finetune.initialize()
    load_pretrained_weights(finetune.network, str(folder / "checkpoint_final.pth"))
    key = "encoder.stages.1.0.convs.0.conv.weight"
    assert finetune.network.state_dict()[key].ndim == 5
    assert torch.equal(finetune.network.state_dict()[key], checkpoint["network_weights"][key])


@pytest.mark.parametrize("method", ["SimCLR", "PCL", "DINO"])
def test_each_view_method_pretrains_on_3d_patches(three_d_env, method):
    trainer = _trainer(f"nnUNetTrainerSSP_{method}_1epochs_2iters")
    trainer.run_training()
    trainer.perform_actual_validation()
    summary = json.loads((Path(trainer.output_folder) / "ssp_summary.json").read_text())
    assert summary["epochs"] == 1 and np.isfinite(summary["final_val_loss"])
    views = trainer.method.view_transforms(trainer.configuration_manager.patch_size, (0, 0), (), None)
    out = views[-1](image=torch.randn(1, 12, 48, 48))["image"]  # DINO's last is a local crop at half the patch
    assert out.ndim == 4 and out.shape[1:] == tuple(p // (2 if method == "DINO" else 1) for p in (12, 32, 32))


@pytest.mark.parametrize("method", ["MIM", "DINO"])
def test_a_patch_of_few_slices_pretrains_with_whole_slice_cells_and_in_plane_views(three_d_env, method):
    from nnunetv2.run.run_training import get_trainer_from_args

    preprocessed = _preprocessed(three_d_env)
    plans = json.loads((preprocessed / f"{PLANS}.json").read_text())
    plans["plans_name"] = "nnUNetPlansFewSlices"  # same preprocessed cases, a patch of 4 slices
    plans["configurations"][CONFIGURATION]["patch_size"] = [4, 32, 32]
    (preprocessed / "nnUNetPlansFewSlices.json").write_text(json.dumps(plans))
    trainer = get_trainer_from_args(str(DATASET_ID), CONFIGURATION, "all", f"nnUNetTrainerSSP_{method}_1epochs_2iters",
                                    "nnUNetPlansFewSlices", device=torch.device("cpu"))
    trainer.run_training()
    trainer.perform_actual_validation()
    assert trainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size()[1]  # nnU-Net: dummy 2D
    summary = json.loads((Path(trainer.output_folder) / "ssp_summary.json").read_text())
    assert np.isfinite(summary["final_val_loss"])
    views = next(trainer.get_dataloaders()[0])["views"]
    assert all(v.shape[2] == 4 for v in views)  # every view keeps the patch's 4 slices
    if method == "MIM":
        from nnunet_ssp.methods.mim import grid_cells
        assert grid_cells((4, 32, 32), trainer.method.grid) == (4, 8, 8)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["MIM", "SimCLR", "PCL", "DINO"])
def test_each_method_pretrains_fine_tunes_predicts_and_evaluates_on_3d_fullres(three_d_env, method, tmp_path):
    env = {"nnUNet_n_proc_DA": "0", "nnUNet_def_n_proc": "1"}
    pretrain = [f"nnUNetTrainerSSP_{method}_2epochs_2iters"]
    done = subprocess.run(["nnUNetv2_train", str(DATASET_ID), CONFIGURATION, "all", "-p", PLANS, "-tr", *pretrain,
                           "-device", "cpu"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    checkpoint = (Path(three_d_env["nnUNet_results"]) / f"Dataset{DATASET_ID}_Phantom3d" /
                  f"{pretrain[0]}__{PLANS}__{CONFIGURATION}" / "fold_all" / "checkpoint_final.pth")
    finetune = "nnUNetTrainerSSPFinetune_1epochs_2iters"
    done = subprocess.run(["nnUNetv2_train", str(DATASET_ID), CONFIGURATION, "0", "-p", PLANS, "-tr", finetune,
                           "-device", "cpu", "-pretrained_weights", str(checkpoint)],
                          capture_output=True, text=True, timeout=900, env={**os.environ, **env})
    assert done.returncode == 0, done.stderr[-2000:]
    raw = next(Path(three_d_env["nnUNet_raw"]).glob(f"Dataset{DATASET_ID}_*"))
    predictions = tmp_path / "predictions"
    done = subprocess.run(["nnUNetv2_predict", "-i", str(raw / "imagesTs"), "-o", str(predictions), "-d",
                           str(DATASET_ID), "-c", CONFIGURATION, "-p", PLANS, "-tr", finetune, "-f", "0",
                           "-chk", "checkpoint_final.pth", "-device", "cpu", "-npp", "1", "-nps", "1",
                           "--disable_progress_bar"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    done = subprocess.run(["nnUNetv2_evaluate_folder", str(raw / "labelsTs"), str(predictions), "-djfile",
                           str(predictions / "dataset.json"), "-pfile", str(predictions / "plans.json"), "-np",
                           "1"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((predictions / "summary.json").read_text())
    assert len(summary["metric_per_case"]) == 2  # ED and ES of the test subject


def test_prepare_unlabeled_makes_a_3d_fullres_pool_that_pretraining_draws_from(three_d_env):
    done = _cli("prepare-unlabeled", "-d", str(DATASET_ID), "-i", str(three_d_env["cines"]), "-p", PLANS, "-c",
                CONFIGURATION, "-np", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    pool = _preprocessed(three_d_env) / f"{PLANS}_{CONFIGURATION}_unlabeled"
    report = json.loads((pool / "report.json").read_text())
    assert report["configuration"] == CONFIGURATION
    cases = sorted(p.stem for p in pool.glob("*.b2nd") if not p.stem.endswith("_seg"))
    assert cases and all(c.endswith(tuple(f"_t{t:03d}" for t in range(100))) for c in cases)
    from nnunet_ssp.unlabeled import read_manifest
    rows = read_manifest(pool)
    assert {r.case for r in rows} == set(cases) and all(0 <= r.position <= 1 for r in rows)
    assert not (_preprocessed(three_d_env) / f"{PLANS}_2d_unlabeled").exists()  # the 2d pool is another one
    trainer = _trainer("nnUNetTrainerSSP_PCL_1epochs_2iters")
    trainer.initialize()
    train, _ = trainer.get_slice_tables()
    assert str(pool) in train.folders and len(set(train.case)) > 20


def test_a_configuration_the_plans_lack_is_named_and_nothing_is_written(three_d_env, tmp_path):
    preprocessed = _preprocessed(three_d_env)
    plans = json.loads((preprocessed / f"{PLANS}.json").read_text())
    del plans["configurations"][CONFIGURATION]
    (preprocessed / "nnUNetPlans2dOnly.json").write_text(json.dumps(plans))
    splits = (preprocessed / "splits_final.json").read_bytes()
    out = tmp_path / "bench"
    done = _cli("benchmark", "-d", str(DATASET_ID), "-c", CONFIGURATION, "-p", "nnUNetPlans2dOnly", "--methods",
                "mim", "--subjects", "1", "--seeds", "0", "--out", str(out), "-device", "cpu")
    assert done.returncode == 2
    assert f"nnUNetPlans2dOnly.json has no configuration '{CONFIGURATION}' (it has 2d" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert _only_the_lock(out) and (preprocessed / "splits_final.json").read_bytes() == splits
    done = _cli("prepare-unlabeled", "-d", str(DATASET_ID), "-i", str(three_d_env["cines"]), "-p",
                "nnUNetPlans2dOnly", "-c", CONFIGURATION)
    assert done.returncode == 2 and f"has no configuration '{CONFIGURATION}'" in done.stderr
    assert not (preprocessed / f"nnUNetPlans2dOnly_{CONFIGURATION}_unlabeled").exists()


def test_3d_fullres_planned_but_not_preprocessed_is_named(three_d_env, tmp_path):
    preprocessed = _preprocessed(three_d_env)
    _renamed_plans(preprocessed, "nnUNetPlansNo3d")
    out = tmp_path / "bench"
    done = _cli("benchmark", "-d", str(DATASET_ID), "-c", CONFIGURATION, "-p", "nnUNetPlansNo3d", "--methods",
                "--subjects", "1", "--seeds", "0", "--out", str(out), "-device", "cpu")
    assert done.returncode == 2 and "nnUNetPlansNo3d_3d_fullres is missing" in done.stderr
    assert f"not preprocessed for {CONFIGURATION}" in done.stderr and _only_the_lock(out)
    from nnunetv2.run.run_training import get_trainer_from_args

    from nnunet_ssp.errors import InputError
    with pytest.raises(InputError, match="nnUNetPlansNo3d_3d_fullres is missing: dataset .* is not preprocessed"):
        get_trainer_from_args(str(DATASET_ID), CONFIGURATION, "all", "nnUNetTrainerSSP_MIM", "nnUNetPlansNo3d",
                              device=torch.device("cpu"))
    assert list(Path(three_d_env["nnUNet_results"]).iterdir()) == []  # no fold folder, no log


def test_benchmark_runs_its_steps_on_the_configuration_it_is_given():
    from nnunet_ssp.benchmark import BenchmarkSettings, Layout, plan_runs
    from nnunet_ssp.benchmark.steps import predict_command, train_command
    from nnunet_ssp.errors import InputError

    settings = BenchmarkSettings("502", ("mim",), (1,), (0,), configuration=CONFIGURATION)
    assert "-c 3d_fullres" in settings.command_line()
    assert "-c" not in BenchmarkSettings("502", ("mim",), (1,), (0,)).command_line().split()
    runs = plan_runs(settings, {(1, 0): 5}, 6)
    layout = Layout(Path("/out"), "Dataset502_Phantom3d", PLANS, CONFIGURATION)
    assert train_command(runs[0], layout, "cpu", None, False)[1:4] == ["Dataset502_Phantom3d", CONFIGURATION, "6"]
    finetune = next(run for run in runs if run.kind == "finetune")
    assert predict_command(finetune, layout, "cpu", Path("/images"), 1)[8] == CONFIGURATION
    assert f"__{PLANS}__{CONFIGURATION}" in str(layout.model_folder(finetune))
    with pytest.raises(InputError, match="configuration 2d or 3d_fullres, not '3d_lowres'"):
        BenchmarkSettings("502", configuration="3d_lowres")


def test_the_audit_reads_the_pool_of_the_configuration_it_is_given(three_d_env, capsys):
    from nnunet_ssp.audit import audit_dataset
    from nnunet_ssp.cli import main
    from nnunet_ssp.unlabeled.manifest import ManifestRow, write_manifest

    preprocessed = _preprocessed(three_d_env)
    _renamed_plans(preprocessed, "nnUNetPlansAudit")
    test_subject = next((Path(three_d_env["nnUNet_raw"]) / preprocessed.name / "imagesTs").iterdir()).name
    test_subject = test_subject.split("_frame")[0]
    pool = preprocessed / f"nnUNetPlansAudit_{CONFIGURATION}_unlabeled"  # a 3d_fullres pool with a test subject
    pool.mkdir()
    write_manifest([ManifestRow(f"{test_subject}_t000", test_subject, 0, 0, 0, 1, 0.0, "planted")], pool)
    audit = audit_dataset(DATASET_ID, "nnUNetPlansAudit", configuration=CONFIGURATION)
    assert audit.stages["unlabeled pool"] == {test_subject}
    assert audit.leaks == [f"1 subjects in both unlabeled pool and test: {test_subject}"]
    assert audit_dataset(DATASET_ID, "nnUNetPlansAudit").notes == ["no unlabeled pool of plans nnUNetPlansAudit (2d)."]
    capsys.readouterr()
    assert main(["audit", "-d", str(DATASET_ID), "-p", "nnUNetPlansAudit", "-c", CONFIGURATION]) == 1
    assert f"LEAK: 1 subjects in both unlabeled pool and test: {test_subject}" in capsys.readouterr().out
    from nnunet_ssp.benchmark.layout import Layout
    from nnunet_ssp.benchmark.runner import _refuse_leaks
    from nnunet_ssp.errors import InputError
    with pytest.raises(InputError, match=f"unlabeled pool and test: {test_subject}.*-c {CONFIGURATION}"):
        _refuse_leaks(Layout(Path("unused"), preprocessed.name, "nnUNetPlansAudit", CONFIGURATION), [])
