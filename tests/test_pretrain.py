"""The SSP trainers inside real nnU-Net: lookup, checkpoints, resume, fine-tuning from the weights."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from nnunet_ssp.spelling import OLD_SPELLING, SPELLING

from helpers import PLANS, make_trainer

METHOD_TRAINERS = ["nnUNetTrainerSSP_MIM", "nnUNetTrainerSSP_SimCLR", "nnUNetTrainerSSP_PCL", "nnUNetTrainerSSP_DINO"]


@pytest.mark.parametrize("name", [*METHOD_TRAINERS, "nnUNetTrainerSSPFinetune", "nnUNetTrainerSSP_MIM_3epochs_7iters",
                                  "nnUNetTrainerSSPFinetune_20epochs", "nnUNetTrainer_2epochs_5iters",
                                  "nnUNetTrainerSSP_DINO_2epochs_poolOnly", "nnUNetTrainerSSP_PCL_labeledOnly"])
def test_trainer_names_resolve_through_ext_trainer_and_pickle(nnunet_env, name):
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    cls = recursive_find_trainer_class_by_name(name)
    assert cls.__name__ == name and cls.__module__.startswith("nnunet_ssp.")
    assert pickle.loads(pickle.dumps(cls)) is cls


@pytest.mark.parametrize("name", ["nnUNetTrainerSSP_MIM_0epochs", "nnUNetTrainer_poolOnly",
                                  "nnUNetTrainerSSP_MIM_5iters_abc"])
def test_names_that_are_not_variants_are_not_trainers(nnunet_env, name):
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    with pytest.raises(RuntimeError, match="Could not find requested nnunet trainer"):
        recursive_find_trainer_class_by_name(name)


def test_a_variant_sets_epochs_and_iterations(phantom_env):
    trainer = make_trainer("nnUNetTrainerSSP_PCL_3epochs_7iters")
    assert (trainer.num_epochs, trainer.num_iterations_per_epoch, trainer.num_val_iterations_per_epoch) == (3, 7, 1)
    assert (trainer.initial_lr, trainer.weight_decay) == (0.01, 1e-5)
    for spelling in ("labeledOnly", "labelledOnly"):  # the second spelling kept as an alias
        assert make_trainer(f"nnUNetTrainerSSP_PCL_{spelling}").ssp_data == "labeled"


def test_a_rate_token_overrides_the_method_default_rate(phantom_env):
    assert make_trainer("nnUNetTrainerSSP_SimCLR").initial_lr == 0.01
    assert make_trainer("nnUNetTrainerSSP_SimCLR_lr1e1").initial_lr == 0.1  # the reference study's rate


def test_dino_trainer_scales_its_rate_with_the_batch_and_spares_biases_and_norms_weight_decay(phantom_env):
    trainer = make_trainer("nnUNetTrainerSSP_DINO_1epochs_2iters")
    batch = trainer.configuration_manager.batch_size
    assert trainer.initial_lr == pytest.approx(0.03 * batch / 256)
    assert make_trainer("nnUNetTrainerSSP_DINO_lr1e2").initial_lr == 0.01  # a rate token sets the rate itself
    trainer.initialize()
    decayed, free = trainer.optimizer.param_groups
    assert (decayed["weight_decay"], free["weight_decay"]) == (1e-4, 0.0)
    assert all(p.ndim > 1 for p in decayed["params"]) and all(p.ndim == 1 for p in free["params"])
    grouped = {id(p) for group in (decayed, free) for p in group["params"]}
    assert grouped == {id(p) for p in trainer.training_model.parameters() if p.requires_grad}
    assert not grouped & {id(p) for p in trainer.method.teacher_encoder.parameters()}
    assert make_trainer("nnUNetTrainerSSP_DINO_teacherCopy").method_kwargs == {"teacher_init": "copy"}


def test_mim_pretraining_writes_a_safe_checkpoint_that_stock_nnunet_accepts(phantom_env):
    from nnunetv2.run.load_pretrained_weights import load_pretrained_weights

    trainer = make_trainer("nnUNetTrainerSSP_MIM_2epochs_3iters")
    trainer.run_training()
    trainer.perform_actual_validation()
    folder = Path(trainer.output_folder)
    checkpoint = torch.load(folder / "checkpoint_final.pth", weights_only=True, map_location="cpu")
    ssp = checkpoint["ssp"]
    assert ssp["method"] == "mim" and ssp["trained_parts"] == ["encoder", "decoder"]
    assert ssp["plans_name"] == PLANS and ssp["configuration"] == "2d" and ssp["num_input_channels"] == 1
    assert ssp["data"]["num_slices"] > 0 and len(ssp["data"]["subjects"]) == 6
    assert set(ssp["resume"]["method_state"]) == {"reconstruction_head.weight", "reconstruction_head.bias"}
    assert checkpoint["current_epoch"] == 2 and len(checkpoint["logging"]["val_losses"]) == 2
    # the saved weights are exactly the plans-built segmentation network's
    supervised = make_trainer("nnUNetTrainer_2epochs", fold=0)
    supervised.initialize()
    assert set(checkpoint["network_weights"]) == set(supervised.network.state_dict())
    load_pretrained_weights(supervised.network, str(folder / "checkpoint_final.pth"))
    key = "encoder.stages.1.0.convs.0.conv.weight"
    assert torch.equal(supervised.network.state_dict()[key], checkpoint["network_weights"][key])
    summary = json.loads((folder / "ssp_summary.json").read_text())
    assert summary["epochs"] == 2 and np.isfinite(summary["final_val_loss"])
    assert (folder / "progress.png").is_file() and (folder / "ssp_progress.png").is_file()
    assert sorted(p.name for p in (folder / "ssp_visuals").iterdir()) == ["epoch_0000.png", "epoch_0001.png"]
    assert not list(folder.glob("*.tmp")) and not list(folder.glob(".*.tmp"))


def test_continue_resumes_at_the_right_epoch_with_optimizer_and_method_state(phantom_env):
    first = make_trainer("nnUNetTrainerSSP_SimCLR_2epochs_3iters")
    first.num_epochs = 1  # stop after one epoch, as an interrupted run would
    first.run_training()
    saved = torch.load(Path(first.output_folder) / "checkpoint_final.pth", weights_only=True)

    resumed = make_trainer("nnUNetTrainerSSP_SimCLR_2epochs_3iters")
    resumed.load_checkpoint(str(Path(first.output_folder) / "checkpoint_final.pth"))
    assert resumed.current_epoch == 1
    for key, value in resumed.method.state_dict().items():
        assert torch.equal(value, saved["ssp"]["resume"]["method_state"][key])
    momentum = [s["momentum_buffer"] for s in resumed.optimizer.state_dict()["state"].values()]
    saved_momentum = [s["momentum_buffer"] for s in saved["optimizer_state"]["state"].values()]
    assert momentum and all(torch.equal(a, b) for a, b in zip(momentum, saved_momentum))
    resumed.run_training()
    final = torch.load(Path(resumed.output_folder) / "checkpoint_final.pth", weights_only=True)
    assert final["current_epoch"] == 2 and len(final["logging"]["train_losses"]) == 2
    assert final["logging"]["train_losses"][0] == saved["logging"]["train_losses"][0]


def test_a_checkpoint_of_another_method_cannot_resume(phantom_env):
    from nnunet_ssp.errors import InputError
    mim = make_trainer("nnUNetTrainerSSP_MIM_1epochs_2iters")
    mim.run_training()
    dino = make_trainer("nnUNetTrainerSSP_DINO_1epochs_2iters")
    with pytest.raises(InputError, match="holds mim, not a dino pretraining"):
        dino.load_checkpoint(str(Path(mim.output_folder) / "checkpoint_final.pth"))


def _train_epoch(trainer, epoch):
    np.random.seed(epoch)
    torch.manual_seed(epoch)
    trainer.on_train_epoch_start()
    losses = [float(trainer.train_step(next(trainer.dataloader_train))["loss"])
              for _ in range(trainer.num_iterations_per_epoch)]
    trainer.current_epoch += 1
    return losses


def test_dino_resumed_continues_with_the_same_teacher_centre_and_schedules(phantom_env, monkeypatch):
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    torch.manual_seed(0)
    uninterrupted = make_trainer("nnUNetTrainerSSP_DINO_2epochs_2iters")
    uninterrupted.on_train_start()
    state_after_first = None
    for epoch in range(2):
        if epoch == 1:
            uninterrupted.current_epoch -= 1
            uninterrupted.save_checkpoint(str(Path(uninterrupted.output_folder) / "checkpoint_latest.pth"))
            uninterrupted.current_epoch += 1
            state_after_first = {k: v.clone() for k, v in uninterrupted.method.state_dict().items()}
        losses = _train_epoch(uninterrupted, epoch)
    resumed = make_trainer("nnUNetTrainerSSP_DINO_2epochs_2iters")
    resumed.load_checkpoint(str(Path(uninterrupted.output_folder) / "checkpoint_latest.pth"))
    assert resumed.current_epoch == 1
    for key, value in resumed.method.state_dict().items():
        assert torch.equal(value, state_after_first[key]), key
    resumed.on_train_start()
    assert resumed.current_epoch == 1
    assert _train_epoch(resumed, 1) == pytest.approx(losses, rel=1e-5)
    for trainer in (uninterrupted, resumed):
        trainer.on_train_end()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["nnUNetTrainerSSP_SimCLR_3epochs_30iters", "nnUNetTrainerSSP_PCL_3epochs_30iters",
                                  "nnUNetTrainerSSP_DINO_3epochs_30iters"])
def test_short_run_on_the_phantom_does_not_collapse(phantom_env, name):
    torch.manual_seed(0)
    trainer = make_trainer(name)
    trainer.run_training()
    spread = trainer.ssp_history["val_embedding_spread"]
    image = torch.zeros(2, 1, *trainer.configuration_manager.patch_size)
    dimension = trainer.method.embed(trainer.network.encoder(image)[-1]).shape[1]
    # Uniformly spread unit vectors give about 1/sqrt(D), a collapsed embedding about 0. After the first epoch the
    # spread was 0.001-0.012 and it ended 0.008-0.039 (PCL lowest, 0.0078-0.0115 over runs): it must at least double,
    # and end above 0.1/sqrt(D), 0.0044 for PCL's D = 512.
    assert spread[-1] > 2 * spread[0] and spread[-1] > 0.1 / dimension ** 0.5, spread
    assert len(trainer.ssp_history["val_position_knn_accuracy"]) == 3


def test_pretraining_draws_from_labeled_cases_and_the_unlabeled_pool(phantom_env):
    both = make_trainer("nnUNetTrainerSSP_MIM_1epochs_2iters")
    labeled = make_trainer("nnUNetTrainerSSP_MIM_1epochs_2iters_labeledOnly")
    pool = make_trainer("nnUNetTrainerSSP_MIM_1epochs_2iters_poolOnly")
    tables = {t.ssp_data: t.get_slice_tables()[0] for t in (both, labeled, pool)}
    frames = {name: set(zip(table.subject, table.frame)) for name, table in tables.items()}
    assert len(tables["pool"]) > len(tables["labeled"]) > 0
    # the pool holds every frame, ED and ES included: together, each frame is sampled once, from the labeled case
    assert frames["labeled"] < frames["pool"] and frames["both"] == frames["pool"]
    assert len(tables["both"]) == len(tables["pool"])
    labeled_folder = tables["both"].folders.index(tables["labeled"].folders[0])
    from_labeled = {(s, f) for s, f, i in zip(tables["both"].subject, tables["both"].frame,
                                              tables["both"].folder_index) if i == labeled_folder}
    assert from_labeled == frames["labeled"]
    rows = list(zip(tables["both"].subject, tables["both"].frame, tables["both"].slice_index))
    assert len(rows) == len(set(rows)), "a frame is sampled twice (ED/ES from both sources)"
    assert set(tables["both"].subject) == set(tables["labeled"].subject)  # test subjects never enter the pool
    assert all(0 <= p <= 1 for p in tables["both"].position)
    # labeled cases and pool frames agree on every slice's base-to-apex position
    positions = {}
    for subject, index, position in zip(tables["both"].subject, tables["both"].slice_index, tables["both"].position):
        assert positions.setdefault((subject, index), position) == position


def test_a_trainer_setting_labeled_data_in_the_older_spelling_still_runs(phantom_env):
    trainer = make_trainer("nnUNetTrainerSSP_MIM_1epochs_2iters_labeledOnly")
    current = trainer.get_slice_tables()[0]
    trainer.ssp_data = OLD_SPELLING
    older = trainer.get_slice_tables()[0]
    assert trainer.ssp_data == SPELLING and len(older) == len(current) > 0


def test_a_pool_without_training_slices_is_refused_with_its_manifest(phantom_env, tmp_path):
    from nnunet_ssp.errors import InputError
    from nnunet_ssp.unlabeled import MANIFEST_FILE
    from nnunet_ssp.unlabeled.manifest import COLUMNS

    trainer = make_trainer("nnUNetTrainerSSP_MIM_1epochs_2iters_poolOnly")
    base = tmp_path / "Dataset501_Phantom"
    (base / "nnUNetPlansCPU_2d_unlabeled").mkdir(parents=True)
    (base / "nnUNetPlansCPU_2d").symlink_to(trainer.preprocessed_dataset_folder)
    (base / "nnUNetPlansCPU_2d_unlabeled" / MANIFEST_FILE).write_text(",".join(COLUMNS) + "\n")
    trainer.preprocessed_dataset_folder_base = str(base)
    with pytest.raises(InputError, match=r"nnUNetPlansCPU_2d_unlabeled/manifest.csv holds no slice"):
        trainer.get_slice_tables()
