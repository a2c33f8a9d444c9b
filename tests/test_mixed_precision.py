"""The losses and the pretraining step in half precision, as nnU-Net trains on CUDA (fp16 autocast and a GradScaler).

Without a GPU, CUDA's fp16 autocast is stood in for by CPU autocast in float16 and bfloat16 and by float16 tensors.
Tolerances against float32, and why:
- a loss given float16 inputs is computed in float32 on exactly those values, so it matches float32 on the same
  values to float32 rounding (1e-6); against the unrounded inputs, fp16's unit roundoff of 2^-11 (5e-4) grows by the
  temperature division (1 / 0.02 = 50 for DINO's teacher) to at most 2e-2 relative error of the loss, and the input
  gradients keep a cosine similarity above 0.99;
- a training step under autocast runs every convolution in half precision: float16 (11 significant bits, what CUDA
  uses) keeps the loss within 5e-3 relative error and the parameter gradients' cosine similarity above 0.99;
  bfloat16 (8 significant bits, unit roundoff 2^-9) within 2e-2 and above 0.9, because at initialisation a
  contrastive gradient is a small difference between nearly equal similarities, so its relative error is many times
  the roundoff (measured 0.94 to 0.99 on these networks, 0.96 to 0.999 for MIM and DINO).
"""

import contextlib
import copy

import pytest
import torch
import torch.nn.functional as F

from helpers import PHANTOM_DATASET_ID, PLANS, build_unet, unet_kwargs
from nnunet_ssp.methods import get_method_class
from nnunet_ssp.methods.dino import DINOLoss
from nnunet_ssp.methods.mim import masked_mse
from nnunet_ssp.methods.pcl import PositionalContrastiveLoss
from nnunet_ssp.methods.simclr import NTXentLoss

METHODS = ["mim", "simclr", "pcl", "dino"]
HALF = {"float16": (torch.float16, 5e-3, 0.99), "bfloat16": (torch.bfloat16, 2e-2, 0.9)}


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return F.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0).item()


def _losses():
    """Each loss as a function of a list of float tensors that need gradients, with inputs of its own shape."""
    torch.manual_seed(0)
    positions = torch.rand(16)
    mask = torch.rand(4, 1, 24, 24) < 0.5
    dino = DINOLoss(out_dim=256, warmup_teacher_temperature=0.02, teacher_temperature=0.02).eval()
    return {
        "ntxent": (lambda z: NTXentLoss(0.1)(z[0], z[1]), [torch.randn(16, 64), torch.randn(16, 64)]),
        "pcl": (lambda z: PositionalContrastiveLoss(0.1, 0.2)(z[0], z[1], positions),
                [torch.randn(16, 64), torch.randn(16, 64)]),
        # cosine similarities to prototypes, as DINO's head gives, at the teacher temperature of 0.02
        "dino": (lambda z: dino(z[:2], z, 0), [F.normalize(torch.randn(8, 256), dim=1) for _ in range(4)]),
        "masked_mse": (lambda z: masked_mse(z[0], z[1], mask), [torch.randn(4, 1, 24, 24), torch.randn(4, 1, 24, 24)]),
    }


def _loss_and_gradients(loss, inputs, context=contextlib.nullcontext):
    """The loss computed under `context` and its gradients; backward outside it, as nnU-Net's train_step does."""
    inputs = [x.detach().clone().requires_grad_(True) for x in inputs]
    with context():
        value = loss(inputs)
    value.backward()
    return value, [x.grad for x in inputs]


@pytest.mark.parametrize("name", ["ntxent", "pcl", "dino", "masked_mse"])
def test_each_loss_of_float16_inputs_is_float32_and_close_to_float32(name):
    loss, inputs = _losses()[name]
    half = [x.half() for x in inputs]
    value, gradients = _loss_and_gradients(loss, half)
    assert value.dtype == torch.float32 and all(g.dtype == torch.float16 and torch.isfinite(g).all() for g in gradients)
    same_values, _ = _loss_and_gradients(loss, [x.float() for x in half])
    torch.testing.assert_close(value, same_values, rtol=1e-6, atol=1e-6)
    reference, reference_gradients = _loss_and_gradients(loss, inputs)
    assert abs(value.item() - reference.item()) <= 2e-2 * abs(reference.item())
    assert _cosine(torch.cat([g.flatten() for g in gradients]), torch.cat([g.flatten() for g in reference_gradients])) \
        > 0.99


@pytest.mark.parametrize("name", ["ntxent", "pcl", "dino", "masked_mse"])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_each_loss_under_cpu_autocast_is_computed_in_float32(name, dtype):
    loss, inputs = _losses()[name]
    reference, reference_gradients = _loss_and_gradients(loss, inputs)
    value, gradients = _loss_and_gradients(loss, inputs, lambda: torch.autocast("cpu", dtype=HALF[dtype][0]))
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, reference, rtol=1e-5, atol=1e-6)  # no matmul or einsum went to half precision
    for gradient, expected in zip(gradients, reference_gradients):
        torch.testing.assert_close(gradient, expected, rtol=1e-4, atol=1e-6)


def test_features_that_overflow_float16_at_temperature_0_02_give_a_finite_loss():
    torch.manual_seed(0)
    big = (torch.randn(8, 256) * 2000).half()  # 2000 / 0.02 = 1e5, beyond float16's largest number 65504
    assert not torch.isfinite(big / 0.02).all()
    outputs = [big, big.flip(0), (torch.randn(8, 256) * 2000).half(), (torch.randn(8, 256) * 2000).half()]
    dino = DINOLoss(out_dim=256, warmup_teacher_temperature=0.02, teacher_temperature=0.02)
    value = dino(outputs[:2], outputs, 0)
    assert torch.isfinite(value) and torch.isfinite(dino.center).all()
    reference = DINOLoss(out_dim=256, warmup_teacher_temperature=0.02, teacher_temperature=0.02)(
        [o.float() for o in outputs[:2]], [o.float() for o in outputs], 0)
    torch.testing.assert_close(value, reference)

    embeddings = (torch.randn(2, 16, 512) * 300).half()  # squared norms of 512 values of 300 exceed 65504
    assert not torch.isfinite(embeddings[0].pow(2).sum(dim=1)).all()
    for loss in (NTXentLoss(0.1), lambda a, b: PositionalContrastiveLoss(0.1)(a, b, torch.rand(16))):
        assert torch.isfinite(loss(embeddings[0], embeddings[1]))
    prediction = (torch.randn(4, 1, 24, 24) * 300).half()
    assert torch.isfinite(masked_mse(prediction, torch.zeros_like(prediction), torch.ones(4, 1, 24, 24, dtype=bool)))


def _resenc_network():
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    kwargs = {**unet_kwargs((16, 32, 64)), "n_blocks_per_stage": [1, 2, 2], "n_conv_per_stage_decoder": [1, 1]}
    del kwargs["n_conv_per_stage"]
    return get_network_from_plans("dynamic_network_architectures.architectures.unet.ResidualEncoderUNet", kwargs,
                                  ["conv_op", "norm_op", "dropout_op", "nonlin"], 1, 4, allow_init=True,
                                  deep_supervision=False)


NETWORKS = {"PlainConvUNet": lambda: build_unet((16, 32, 64)), "ResidualEncoderUNet": _resenc_network}


def _step(network, method, views, positions, context):
    """One SGD step of copies of `network` and `method` under `context`: loss, gradients, finite updated weights."""
    network, method = copy.deepcopy((network, method))  # together, so MIM's hook stays on its own network copy
    parameters = [*method.trained_parameters(network), *(p for p in method.parameters() if p.requires_grad)]
    optimizer = torch.optim.SGD(parameters, lr=0.01)
    torch.manual_seed(1)  # the same MIM mask in every run
    with context():
        loss = method(network, views, positions, 0)
    loss.backward()
    gradients = torch.cat([p.grad.flatten() for p in parameters if p.grad is not None])
    before = [p.detach().clone() for p in parameters]
    optimizer.step()
    method.after_optimizer_step(network, 0, 10)
    assert all(torch.isfinite(p).all() for p in parameters)
    assert any(not torch.equal(b, p) for b, p in zip(before, parameters))
    return loss, gradients


@pytest.mark.parametrize("architecture", list(NETWORKS))
@pytest.mark.parametrize("method_name", METHODS)
def test_a_training_step_under_cpu_autocast_matches_float32(architecture, method_name):
    torch.manual_seed(0)
    network = NETWORKS[architecture]()
    kwargs = {"out_dim": 1024, "num_local_crops": 2} if method_name == "dino" else {}
    method = get_method_class(method_name)(network, 1, (32, 32), 2, **kwargs)
    views = [torch.randn(8, 1, 32, 32), torch.randn(8, 1, 32, 32)]
    views += [torch.randn(8, 1, 16, 16)] * 2 if method_name == "dino" else []
    positions = torch.rand(8)
    loss, gradients = _step(network, method, views, positions, lambda: torch.autocast("cpu", enabled=False))
    for dtype, (torch_dtype, loss_tolerance, cosine) in HALF.items():
        half_loss, half_gradients = _step(network, method, views, positions,
                                          lambda: torch.autocast("cpu", dtype=torch_dtype))
        assert half_loss.dtype == torch.float32 and torch.isfinite(half_loss), dtype
        assert abs(half_loss.item() - loss.item()) <= loss_tolerance * abs(loss.item()), dtype
        assert _cosine(half_gradients, gradients) > cosine, dtype


@pytest.mark.parametrize("trainer_name", ["nnUNetTrainerSSP_DINO_1epochs_2iters",
                                          "nnUNetTrainerSSP_SimCLR_1epochs_2iters"])
def test_the_trainers_step_runs_under_autocast_with_a_grad_scaler(phantom_env, monkeypatch, trainer_name):
    """nnU-Net's CUDA path of train_step (autocast, scale, unscale, clip, step, update) on the CPU in bfloat16."""
    from nnunetv2.run.run_training import get_trainer_from_args
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    trainer = get_trainer_from_args(str(PHANTOM_DATASET_ID), "2d", "all", trainer_name, PLANS,
                                    device=torch.device("cpu"))
    trainer.initialize()
    trainer.grad_scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    monkeypatch.setattr(trainer, "_autocast", lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    trainer.on_train_start()
    before = {k: v.clone() for k, v in trainer.network.encoder.state_dict().items()}
    losses = [float(trainer.train_step(next(trainer.dataloader_train))["loss"]) for _ in range(2)]
    after = trainer.network.encoder.state_dict()
    trainer.on_train_end()
    assert all(torch.isfinite(torch.tensor(losses)))
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
    assert any(not torch.equal(before[k], v) for k, v in after.items())
    assert trainer.grad_scaler.get_scale() > 0
