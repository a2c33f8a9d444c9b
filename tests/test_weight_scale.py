"""Rescaling pretrained conv filters to a fresh initialisation's norms: same function, fresh norms."""

import pytest
import torch

from helpers import build_unet, started_from_pretrained
from nnunet_ssp.weight_scale import filter_norms, normed_convs, rescale_to_fresh_norm


def _filter_norms(network) -> dict:
    return {name: filter_norms(block.conv.weight) for name, block in normed_convs(network).items()}


def test_rescaling_keeps_the_output_and_gives_each_filter_the_fresh_norm():
    torch.manual_seed(0)
    network, fresh = build_unet(), build_unet()
    with torch.no_grad():
        for block in normed_convs(network).values():  # grown filters, as after SimCLR pretraining
            scale = torch.rand(block.conv.out_channels) * 2 + 0.5
            block.conv.weight.mul_(scale.view(-1, 1, 1, 1))
            block.conv.bias.mul_(scale)
    x = torch.randn(2, 1, 32, 32)
    before = network(x)
    assert rescale_to_fresh_norm(network, fresh) == 10  # 2 convs in each of 3 encoder and 2 decoder stages
    torch.testing.assert_close(network(x), before, rtol=1e-3, atol=1e-3)  # up to the norm eps
    norms, fresh_norms = _filter_norms(network), _filter_norms(fresh)
    for name in fresh_norms:
        torch.testing.assert_close(norms[name], fresh_norms[name])


def test_rescaling_refuses_a_norm_that_would_change_the_function_and_changes_nothing():
    network, fresh = build_unet(), build_unet()
    network.decoder.stages[-1].convs[-1].norm = torch.nn.BatchNorm2d(8)  # the last normed conv, after all the others
    before = {k: v.clone() for k, v in network.state_dict().items()}
    with pytest.raises(ValueError, match="'decoder.stages.1.convs.1' is followed by BatchNorm2d"):
        rescale_to_fresh_norm(network, fresh)
    assert all(torch.equal(before[k], v) for k, v in network.state_dict().items())


def test_fresh_norm_variant_rescales_the_pretrained_encoder_at_the_start(phantom_env, monkeypatch):
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    trainer = started_from_pretrained("nnUNetTrainerSSPFinetune_freshNorm_1epochs_2iters")
    state = trainer.network.state_dict()
    assert all(torch.all(v == 0.5) for k, v in state.items() if k.startswith("encoder.") and ".norm." in k)
    weight = state["encoder.stages.0.0.convs.1.conv.weight"]  # all 0.5 before: filter norm 0.5 * sqrt(32 * 9) = 8.5
    norms = filter_norms(weight)
    assert torch.all((norms > 1.0) & (norms < 2.0)), "not the norm of nnU-Net's He initialisation, about sqrt(2)"
    assert torch.all(weight == weight.flatten(1)[:, :1].view(-1, 1, 1, 1)), "the filters changed direction"
    trainer.on_train_end()
