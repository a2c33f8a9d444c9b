"""Fine-tuning recipes: variant tokens, per-group rates, encoder freezing and decoder re-initialisation."""

import os
import sys
from pathlib import Path

import pytest
import torch

from nnunet_ssp.finetune import SILENT_DICE, silent_structures

from helpers import make_trainer, started_from_pretrained

RECIPES = ["nnUNetTrainerSSPFinetune_lr1e2", "nnUNetTrainerSSPFinetune_warmup20pct_50epochs",
           "nnUNetTrainerSSPFinetune_freeze10pct", "nnUNetTrainerSSPFinetune_encLr0p1_decoderReinit",
           "nnUNetTrainerSSPFinetune_decoderTransfer_lr5e3", "nnUNetTrainerSSPFinetune_freshNorm_decoderTransfer",
           "nnUNetTrainerSSP_MIM_mask60_grid4", "nnUNetTrainerSSP_MIM_mask75", "nnUNetTrainerSSP_MIM_sspAug_100epochs",
           "nnUNetTrainerSSP_PCL_t0p35_nnunetAug", "nnUNetTrainerSSP_SimCLR_warmup10pct_lr5e2", "nnUNetTrainer_lr5e3"]


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_variants_resolve_through_ext_trainer(nnunet_env, name):
    import pickle

    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    cls = recursive_find_trainer_class_by_name(name)
    assert cls.__name__ == name and pickle.loads(pickle.dumps(cls)) is cls


@pytest.mark.parametrize("name", ["nnUNetTrainerSSP_DINO_mask60", "nnUNetTrainer_freeze10pct",
                                  "nnUNetTrainerSSP_MIM_t0p1", "nnUNetTrainerSSPFinetune_2epochs_3epochs",
                                  "nnUNetTrainerSSP_SimCLR_freshNorm",
                                  "nnUNetTrainerSSPFinetune_poolOnly", "nnUNetTrainerSSP_DINO_sspAug",
                                  "nnUNetTrainerSSPFinetune_decoderReinit_decoderTransfer"])
def test_tokens_that_do_not_apply_make_no_trainer(nnunet_env, name):
    from nnunet_ssp.variants import variant_class
    assert variant_class(name) is None


def test_tokens_set_the_settings(phantom_env):
    finetune = make_trainer("nnUNetTrainerSSPFinetune_lr1e2_warmup20pct_freeze30pct_encLr0p1_decoderReinit_10epochs",
                            fold=0)
    assert (finetune.initial_lr, finetune.warmup_epochs(), finetune.frozen_encoder_epochs()) == (0.01, 2, 3)
    assert finetune.encoder_lr_scale == 0.1 and finetune.reinitialize_decoder
    mim = make_trainer("nnUNetTrainerSSP_MIM_mask60_grid4_sspAug")
    assert mim.method_kwargs == {"mask_ratio": 0.6, "grid": 4, "augmentation": "ssp"}
    mim.initialize()
    assert (mim.method.grid, mim.method.mask_ratio, mim.method.augmentation) == (4, 0.6, "ssp")
    assert make_trainer("nnUNetTrainerSSP_PCL_t0p35").method_kwargs == {"threshold": 0.35}


def test_default_schedule_is_nnunets_and_the_old_one_is_a_variant(phantom_env):
    from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler
    default = make_trainer("nnUNetTrainerSSPFinetune_10epochs", fold=0)
    default.initialize()
    reference = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    poly = PolyLRScheduler(reference, 1e-2, 10)
    for epoch in range(10):
        default.lr_scheduler.step(epoch)
        poly.step(epoch)
        assert default.optimizer.param_groups[0]["lr"] == pytest.approx(reference.param_groups[0]["lr"])
    old = make_trainer("nnUNetTrainerSSPFinetune_lr5e3_warmup5pct_20epochs", fold=0)
    assert (old.initial_lr, old.warmup_epochs()) == (5e-3, 1)


def test_encoder_rate_keeps_its_ratio_through_warmup_and_decay(phantom_env):
    trainer = make_trainer("nnUNetTrainerSSPFinetune_encLr0p1_warmup20pct_10epochs", fold=0)
    trainer.initialize()
    rest_group, encoder_group = trainer.optimizer.param_groups
    assert {id(p) for p in encoder_group["params"]} == {id(p) for p in trainer.network.encoder.parameters()}
    for epoch in range(10):
        trainer.lr_scheduler.step(epoch)
        assert encoder_group["lr"] == pytest.approx(0.1 * rest_group["lr"]) and rest_group["lr"] > 0


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items() if v.is_floating_point()}


def _changed(before, module):
    after = module.state_dict()
    return any(not torch.equal(before[k], after[k]) for k in before)


def test_frozen_encoder_is_unchanged_for_k_epochs_then_updated(phantom_env, monkeypatch):
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    trainer = make_trainer("nnUNetTrainerSSPFinetune_freeze50pct_warmup0pct_2epochs_2iters", fold=0)
    trainer.on_train_start()
    encoder, decoder = _snapshot(trainer.network.encoder), _snapshot(trainer.network.decoder.stages)
    for epoch in range(2):
        trainer.on_train_epoch_start()
        for _ in range(trainer.num_iterations_per_epoch):
            trainer.train_step(next(trainer.dataloader_train))
        trainer.current_epoch += 1
        if epoch == 0:
            assert not _changed(encoder, trainer.network.encoder), "the encoder moved while frozen"
            assert _changed(decoder, trainer.network.decoder.stages)
    assert _changed(encoder, trainer.network.encoder), "the encoder never moved after release"
    trainer.on_train_end()


def test_default_keeps_the_pretrained_encoder_only_and_never_reinitialises_on_resume(phantom_env, monkeypatch):
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    name = "nnUNetTrainerSSPFinetune_1epochs_2iters"
    trainer = started_from_pretrained(name)
    state = trainer.network.state_dict()
    assert all(torch.all(v == 0.5) for k, v in state.items() if k.startswith("encoder."))
    stage = state["decoder.stages.0.convs.0.conv.weight"]
    assert not torch.all(stage == 0.5) and stage.std() > 0
    trainer.save_checkpoint(str(phantom_env["nnUNet_results"] / "trained.pth"))
    trainer.on_train_end()

    resumed = make_trainer(name, fold=0)
    resumed.load_checkpoint(str(phantom_env["nnUNet_results"] / "trained.pth"))  # as --c does
    resumed.on_train_start()
    assert torch.equal(resumed.network.state_dict()["decoder.stages.0.convs.0.conv.weight"], stage)
    resumed.on_train_end()


def test_decoder_transfer_keeps_the_pretrained_decoder(phantom_env, monkeypatch):
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    trainer = started_from_pretrained("nnUNetTrainerSSPFinetune_decoderTransfer_1epochs_2iters")
    assert all(torch.all(v == 0.5) for v in trainer.network.state_dict().values() if v.is_floating_point())
    trainer.on_train_end()


def test_silent_structures_are_those_near_zero():
    assert silent_structures([0.0, 0.7, 0.004], ["RV", "MYO", "LV"]) == ["RV", "LV"]
    assert silent_structures([0.3, 0.7, 0.5], ["RV", "MYO", "LV"]) == []


def _warnings(trainer) -> list:
    return [line for line in open(trainer.log_file) if "pseudo-Dice of" in line]


def test_a_structure_still_silent_at_the_end_is_named_in_the_log(phantom_env, monkeypatch):
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    trained = make_trainer("nnUNetTrainerSSPFinetune_1epochs_2iters", fold=0)
    trained.run_training()
    assert trained.structure_names() == ["RV", "MYO", "LV"]
    dice = trained.logger.get_value("dice_per_class_or_region", step=None)[-1]
    assert len(_warnings(trained)) == (min(dice) < SILENT_DICE), dice

    silent = make_trainer("nnUNetTrainerSSPFinetune_1epochs_2iters", fold=0)
    silent.on_train_start()
    silent.logger.log("dice_per_class_or_region", [0.0, 0.7, 0.004], 0)  # what nnU-Net logs at an epoch's end
    silent.current_epoch = 1
    silent.on_train_end()
    assert [line.split(": ", 1)[1].strip() for line in _warnings(silent)] == [
        "Warning: the validation pseudo-Dice of RV, LV is still about 0 after 1 epoch, so the model does not "
        "segment them yet: train for more epochs."]


class _Payload:
    """Unpickling this creates the folder `path`: what a checkpoint carrying code could do."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return os.makedirs, (str(self.path),)


def test_pretrained_weights_carrying_code_stop_the_trainer_before_nnunet_unpickles_them(phantom_env, tmp_path,
                                                                                      monkeypatch):
    from nnunet_ssp.errors import InputError

    marker, evil = tmp_path / "created_by_the_checkpoint", tmp_path / "evil.pth"
    torch.save({"network_weights": {}, "trainer_name": "nnUNetTrainer", "payload": _Payload(marker)}, evil)
    monkeypatch.setattr(sys, "argv", ["nnUNetv2_train", "501", "2d", "0", "-tr", "nnUNetTrainerSSPFinetune",
                                      "-pretrained_weights", str(evil)])
    with pytest.raises(InputError, match=f"{evil} carries Python code \\(os.makedirs\\)"):
        make_trainer("nnUNetTrainerSSPFinetune", fold=0)
    assert not marker.exists()
