"""nnU-Net's residual-encoder plans: planning for the CPU, every method's pretraining, fine-tuning, and the refusals."""

import json
import os
import subprocess
import sys

import pytest
import torch

from helpers import PHANTOM_DATASET_ID, build_unet, session_roots, unet_kwargs
from nnunet_ssp.errors import InputError

RESENC = "nnUNetResEncUNetMPlansCPU"
PLAIN = "nnUNetPlansCPU"
RESENC_CLASS = "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"


@pytest.fixture(scope="module")
def resenc_plans(phantom_roots):
    """The session's phantom planned through `nnunet-ssp plan-cpu --planner nnUNetPlannerResEncM` (batch 2), with
    its own unlabeled pool; returns what the command printed."""
    import contextlib
    import io

    from nnunet_ssp.cli import main
    from nnunet_ssp.unlabeled import prepare_unlabeled

    printed = io.StringIO()
    # nnU-Net's planner needs at least one data-augmentation process
    with session_roots({"nnUNet_raw": phantom_roots["nnUNet_raw"], "nnUNet_n_proc_DA": "1",
                        "nnUNet_preprocessed": phantom_roots["nnUNet_preprocessed"]}):
        with contextlib.redirect_stdout(printed):
            code = main(["plan-cpu", "-d", str(PHANTOM_DATASET_ID), "--planner", "nnUNetPlannerResEncM", "-np", "1",
                         "--batch-size", "2"])
        assert code == 0
        prepare_unlabeled(PHANTOM_DATASET_ID, phantom_roots["cines"], plans_name=RESENC, num_processes=1)
    return printed.getvalue()


@pytest.fixture
def resenc_env(resenc_plans, phantom_env, monkeypatch):
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    return phantom_env


def make_trainer(name: str, plans: str = RESENC, fold="all", configuration="2d"):
    from nnunetv2.run.run_training import get_trainer_from_args
    return get_trainer_from_args(str(PHANTOM_DATASET_ID), configuration, fold, name, plans, device=torch.device("cpu"))


def _pretrain(name: str):
    """Train `name` on the ResEnc plans to the end; returns its checkpoint_final.pth."""
    trainer = make_trainer(name)
    trainer.run_training()
    trainer.perform_actual_validation()
    return os.path.join(trainer.output_folder, "checkpoint_final.pth")


def _fine_tune_start(name: str, checkpoint: str):
    """A fine-tuning trainer on fold 0 after nnU-Net's -pretrained_weights path and the trainer's own start."""
    from nnunetv2.run.load_pretrained_weights import load_pretrained_weights
    trainer = make_trainer(name, fold=0)
    trainer.initialize()
    load_pretrained_weights(trainer.network, checkpoint)
    trainer.on_train_start()
    return trainer


def _two_steps(trainer) -> list:
    losses = [float(trainer.train_step(next(trainer.dataloader_train))["loss"]) for _ in range(2)]
    trainer.on_train_end()
    return losses


def _filters(state: dict, prefix: str) -> dict:
    """The conv weights of a state dict under `prefix` (the decoder's own or the encoder)."""
    return {k: v for k, v in state.items() if k.startswith(prefix) and k.endswith("conv.weight")}


def test_plan_cpu_plans_the_phantom_with_a_half_width_residual_encoder(resenc_plans, phantom_roots):
    assert f"with plans {RESENC}; train with -p {RESENC}." in resenc_plans
    folder = phantom_roots["nnUNet_preprocessed"] / f"Dataset{PHANTOM_DATASET_ID}_Phantom"
    plans = json.loads((folder / f"{RESENC}.json").read_text())["configurations"]["2d"]
    plain = json.loads((folder / f"{PLAIN}.json").read_text())["configurations"]["2d"]
    assert plans["architecture"]["network_class_name"] == RESENC_CLASS
    kwargs = plans["architecture"]["arch_kwargs"]
    assert kwargs["features_per_stage"][0] == 16 and max(kwargs["features_per_stage"]) <= 256
    assert kwargs["n_blocks_per_stage"][:3] == [1, 3, 4]
    assert plans["batch_size"] == 2
    # its own data folder: planning never re-preprocesses (and so deletes) the data of other plans
    assert plans["data_identifier"] == f"{RESENC}_2d" != plain["data_identifier"]
    assert (folder / f"{RESENC}_2d").is_dir() and (folder / f"{PLAIN}_2d").is_dir()


def test_an_unknown_planner_is_refused_by_name(nnunet_env, capsys):
    from nnunet_ssp.cli import main
    assert main(["plan-cpu", "-d", "1", "--planner", "nnUNetPlannerResEncXXL"]) == 2
    assert "nnU-Net has no planner class 'nnUNetPlannerResEncXXL'" in capsys.readouterr().err


def test_mim_pretrains_and_fine_tunes_on_resenc_plans(resenc_env):
    """The fast ResEnc path: MIM (encoder and decoder), then fine-tuning with and without the decoder."""
    checkpoint = _pretrain("nnUNetTrainerSSP_MIM_1epochs_2iters")
    saved = torch.load(checkpoint, weights_only=True, map_location="cpu")
    assert saved["ssp"]["architecture"]["network_class_name"] == RESENC_CLASS
    assert any(k.startswith("encoder.stem.") for k in saved["network_weights"])
    weights = saved["network_weights"]

    default = _fine_tune_start("nnUNetTrainerSSPFinetune_1epochs_2iters", checkpoint)
    state = default.network.state_dict()
    encoder = _filters(weights, "encoder.")
    assert encoder and all(torch.equal(state[k], v) for k, v in encoder.items())
    decoder = _filters(weights, "decoder.stages.")
    assert decoder and not any(torch.equal(state[k], v) for k, v in decoder.items())  # built afresh
    assert all(torch.isfinite(torch.tensor(loss)) for loss in _two_steps(default))

    kept = _fine_tune_start("nnUNetTrainerSSPFinetune_decoderTransfer_freshNorm_1epochs_2iters", checkpoint)
    state = kept.network.state_dict()
    for key, pretrained in {**encoder, **decoder}.items():
        # same direction as pretrained (the decoder kept), rescaled to a fresh initialisation's norms (freshNorm)
        cosine = torch.nn.functional.cosine_similarity(state[key].flatten(1), pretrained.flatten(1), dim=1)
        assert torch.all(cosine > 0.999), key
    assert all(torch.isfinite(torch.tensor(loss)) for loss in _two_steps(kept))


@pytest.mark.slow
@pytest.mark.parametrize("method", ["SimCLR", "PCL", "DINO"])
def test_encoder_methods_pretrain_and_fine_tune_on_resenc_plans(resenc_env, method):
    checkpoint = _pretrain(f"nnUNetTrainerSSP_{method}_1epochs_2iters")
    weights = torch.load(checkpoint, weights_only=True, map_location="cpu")["network_weights"]
    trainer = _fine_tune_start("nnUNetTrainerSSPFinetune_1epochs_2iters", checkpoint)
    state = trainer.network.state_dict()
    assert all(torch.equal(state[k], v) for k, v in _filters(weights, "encoder.").items())
    assert all(torch.isfinite(torch.tensor(loss)) for loss in _two_steps(trainer))


def _untrained_checkpoint(trainer_name: str, plans: str, path) -> str:
    """A pretraining checkpoint as the trainer writes it, before any step (its weights and SSP record are real)."""
    trainer = make_trainer(trainer_name, plans=plans)
    trainer.initialize()
    trainer.save_checkpoint(str(path))
    return str(path)


@pytest.mark.parametrize("pretrained_plans, fine_tune_plans, found, expected", [
    (PLAIN, RESENC, "PlainConvUNet", "ResidualEncoderUNet"),
    (RESENC, PLAIN, "ResidualEncoderUNet", "PlainConvUNet"),
])
def test_weights_of_the_other_unet_are_refused_in_one_sentence(resenc_env, monkeypatch, tmp_path, pretrained_plans,
                                                               fine_tune_plans, found, expected):
    checkpoint = _untrained_checkpoint("nnUNetTrainerSSP_MIM", pretrained_plans, tmp_path / "pretrained.pth")
    monkeypatch.setattr(sys, "argv", ["nnUNetv2_train", "501", "2d", "0", "-pretrained_weights", checkpoint])
    with pytest.raises(InputError) as refused:
        make_trainer("nnUNetTrainerSSPFinetune", plans=fine_tune_plans, fold=0)
    assert str(refused.value) == (f"{checkpoint} holds weights of a {found}, but these plans build a {expected}: "
                                  f"pretrain with the same plans (-p) as the fine-tuning.")
    results = resenc_env["nnUNet_results"] / f"Dataset{PHANTOM_DATASET_ID}_Phantom"
    assert not any("Finetune" in p.name for p in results.iterdir())  # refused before nnU-Net starts its log


def test_nnunetv2_train_stops_on_weights_of_the_other_unet(resenc_env, tmp_path):
    checkpoint = _untrained_checkpoint("nnUNetTrainerSSP_MIM", PLAIN, tmp_path / "plain.pth")
    train = os.path.join(os.path.dirname(sys.executable), "nnUNetv2_train")
    done = subprocess.run([train, str(PHANTOM_DATASET_ID), "2d", "0", "-p", RESENC, "-tr",
                           "nnUNetTrainerSSPFinetune", "-device", "cpu", "-pretrained_weights", checkpoint],
                          capture_output=True, text=True, timeout=600, env=os.environ)
    assert done.returncode != 0
    assert (f"InputError: {checkpoint} holds weights of a PlainConvUNet, but these plans build a ResidualEncoderUNet"
            in done.stderr)
    assert "Key " not in done.stderr  # not nnU-Net's own key-by-key assertion


def test_same_architecture_and_plain_checkpoints_pass_the_check(resenc_env, tmp_path):
    from nnunet_ssp.architectures import check_pretrained_architecture, pretrained_weights_argument
    checkpoint = _untrained_checkpoint("nnUNetTrainerSSP_MIM", RESENC, tmp_path / "resenc.pth")
    check_pretrained_architecture(checkpoint, RESENC_CLASS)
    saved = torch.load(checkpoint, weights_only=True, map_location="cpu")
    del saved["ssp"]  # a stock nnU-Net checkpoint: the class comes from the plans in its init_args
    torch.save(saved, tmp_path / "stock.pth")
    with pytest.raises(InputError, match="holds weights of a ResidualEncoderUNet, but these plans build a Plain"):
        check_pretrained_architecture(str(tmp_path / "stock.pth"), "x.PlainConvUNet")
    assert pretrained_weights_argument(["nnUNetv2_train", "-pretrained_weights=a.pth"]) == "a.pth"
    assert pretrained_weights_argument(["nnUNetv2_train", "1", "2d", "0"]) is None


def _plans_with(folder, name: str, change) -> dict:
    plans = json.loads((folder / f"{PLAIN}.json").read_text())
    plans["plans_name"] = name
    change(plans)
    (folder / f"{name}.json").write_text(json.dumps(plans))
    return plans


@pytest.mark.parametrize("trainer", ["nnUNetTrainerSSP_DINO", "nnUNetTrainerSSPFinetune"])
def test_plans_without_a_unet_or_the_configuration_are_refused_before_anything_is_written(phantom_env, trainer):
    folder = phantom_env["nnUNet_preprocessed"] / f"Dataset{PHANTOM_DATASET_ID}_Phantom"
    primus = "dynamic_network_architectures.architectures.primus.Primus"
    _plans_with(folder, "nnUNetPlansCPUPrimus",
                lambda p: p["configurations"]["2d"]["architecture"].update(network_class_name=primus))
    with pytest.raises(InputError) as refused:
        make_trainer(trainer, plans="nnUNetPlansCPUPrimus")
    assert str(refused.value) == (f"nnUNet_preprocessed/Dataset{PHANTOM_DATASET_ID}_Phantom/nnUNetPlansCPUPrimus.json "
                                  f"builds a {primus} for configuration '2d', but nnunet-ssp trains only nnU-Net's "
                                  f"U-Nets (PlainConvUNet, ResidualEncoderUNet).")
    with pytest.raises(InputError, match=rf"{PLAIN}.json has no configuration '3d_lowres' \(it has 2d, 3d_fullres\)"):
        make_trainer(trainer, plans=PLAIN, configuration="3d_lowres")
    assert list(phantom_env["nnUNet_results"].iterdir()) == []


def test_speed_benchmark_refuses_plans_without_a_unet(phantom_env, capsys):
    from nnunet_ssp.cli import main
    folder = phantom_env["nnUNet_preprocessed"] / f"Dataset{PHANTOM_DATASET_ID}_Phantom"
    _plans_with(folder, "nnUNetPlansCPUOther", lambda p: p["configurations"]["2d"]["architecture"].update(
        network_class_name="dynamic_network_architectures.architectures.unet.ResidualUNet"))
    assert main(["benchmark-speed", "-d", str(PHANTOM_DATASET_ID), "-p", "nnUNetPlansCPUOther"]) == 2
    error = capsys.readouterr().err
    assert "nnUNetPlansCPUOther.json builds a dynamic_network_architectures.architectures.unet.ResidualUNet" in error
    assert error.count("\n") == 1


def _resenc_network(**changes):
    """A small ResidualEncoderUNet built by nnU-Net from plans-style kwargs."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    kwargs = unet_kwargs()
    kwargs["n_blocks_per_stage"] = [1, 2, 2]
    kwargs["n_conv_per_stage_decoder"] = [1, 1]
    del kwargs["n_conv_per_stage"]
    return get_network_from_plans(RESENC_CLASS, {**kwargs, **changes}, ["conv_op", "norm_op", "dropout_op", "nonlin"],
                                  1, 4, allow_init=True, deep_supervision=False)


def test_fresh_norm_keeps_a_residual_encoders_function_and_refuses_batch_norm():
    from nnunet_ssp.weight_scale import filter_norms, normed_convs, rescale_to_fresh_norm
    torch.manual_seed(0)
    network, fresh = _resenc_network(), _resenc_network()
    blocks = normed_convs(network)
    assert any(name.startswith("encoder.stem.") for name in blocks)
    assert any(".skip." in name for name in blocks)  # the residual blocks' projection convs too
    with torch.no_grad():
        for block in blocks.values():  # grown filters, and norms no longer at ResEnc's zero start
            scale = torch.rand(block.conv.out_channels) * 2 + 0.5
            block.conv.weight.mul_(scale.view(-1, 1, 1, 1))
            if block.conv.bias is not None:
                block.conv.bias.mul_(scale)
            block.norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(2, 1, 32, 32)
    before = network(x)
    assert rescale_to_fresh_norm(network, fresh) == len(blocks)
    torch.testing.assert_close(network(x), before, rtol=1e-3, atol=1e-3)
    fresh_blocks = normed_convs(fresh)
    for name, block in normed_convs(network).items():
        torch.testing.assert_close(filter_norms(block.conv.weight), filter_norms(fresh_blocks[name].conv.weight))

    batch_norm = _resenc_network(norm_op="torch.nn.BatchNorm2d")
    with pytest.raises(ValueError, match="is followed by BatchNorm2d"):
        rescale_to_fresh_norm(batch_norm, _resenc_network(norm_op="torch.nn.BatchNorm2d"))


def test_methods_reach_a_residual_encoder_through_encoder_and_decoder_only():
    """Every method builds and computes a finite loss with a ResidualEncoderUNet and a PlainConvUNet alike."""
    from nnunet_ssp.methods import get_method_class, method_names
    for network in (_resenc_network(), build_unet()):
        for name in method_names():
            kwargs = {"out_dim": 64, "num_local_crops": 2} if name == "dino" else {}
            method = get_method_class(name)(network, 1, (32, 32), 2, **kwargs)
            views = [torch.randn(4, 1, 32, 32), torch.randn(4, 1, 32, 32)]
            if name == "dino":
                views += [torch.randn(4, 1, 16, 16)] * 2
            loss = method(network, views, torch.rand(4), 0)
            assert torch.isfinite(loss), (type(network).__name__, name)
            trained = {id(p) for p in method.trained_parameters(network)}
            assert trained and all(id(p) not in trained for p in network.decoder.seg_layers.parameters())


def test_plan_cpu_refuses_a_configuration_the_planner_does_not_make(phantom_env, monkeypatch, capsys):
    from nnunet_ssp.cli import main
    monkeypatch.setenv("nnUNet_n_proc_DA", "1")  # nnU-Net's planner needs at least one
    folder = phantom_env["nnUNet_preprocessed"] / f"Dataset{PHANTOM_DATASET_ID}_Phantom"
    plans_file = folder / "nnUNetPlansCPUCheck.json"
    for before in (None, (folder / f"{PLAIN}.json").read_bytes()):
        if before is not None:
            plans_file.write_bytes(before)
        assert main(["plan-cpu", "-d", str(PHANTOM_DATASET_ID), "--plans-name", "nnUNetPlansCPUCheck", "-c",
                     "3d_lowres", "-np", "1"]) == 2
        error = capsys.readouterr().err
        assert (f"ExperimentPlannerCPU plans no configuration 3d_lowres for Dataset{PHANTOM_DATASET_ID}_Phantom (it "
                f"plans 2d, 3d_fullres), so {plans_file} was not written.") in error
        assert (plans_file.read_bytes() if plans_file.exists() else None) == before
    plans_file.unlink()
    assert not (folder / "nnUNetPlansCPUCheck_3d_lowres").exists()


@pytest.mark.slow
def test_label_efficiency_benchmark_runs_on_resenc_plans(tmp_path, nnunet_env, monkeypatch):
    from nnunet_ssp.benchmark.grid import BenchmarkSettings
    from nnunet_ssp.benchmark.results import read_results_csv
    from nnunet_ssp.benchmark.runner import run_benchmark
    from nnunet_ssp.converters import convert_acdc
    from nnunet_ssp.cpu_plans import plan_and_preprocess_cpu
    from nnunet_ssp.phantom import generate_phantom

    generate_phantom(tmp_path / "phantom", 8, seed=0, image_size=32, spacing=3.0, progress=False)
    convert_acdc(tmp_path / "phantom", 1, test_subjects=2)
    monkeypatch.setenv("nnUNet_n_proc_DA", "1")  # nnU-Net's planner needs at least one
    plans = plan_and_preprocess_cpu(1, num_processes=1, batch_size=2, planner="nnUNetPlannerResEncM")
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    out = tmp_path / "bench"
    result = run_benchmark(BenchmarkSettings("1", ("simclr",), (1,), (0,), 1, 1, 2, plans, out, "cpu"))
    assert (result.n_runs, result.done) == (3, 3)
    rows = read_results_csv(out / "results.csv")
    assert {r.method for r in rows} == {"baseline", "simclr"} and len(rows) == 2 * 4 * 3
    checkpoint = next(out.rglob("checkpoint_final.pth"))
    assert plans in str(checkpoint.parent.parent)
