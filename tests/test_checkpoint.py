"""Our checkpoint loader: safe loading, part selection, and clear errors for foreign or broken files."""

import pytest
import torch

from conftest import build_unet
from nnunet_ssp.checkpoint import load_checkpoint, load_pretrained_parts, part_keys
from nnunet_ssp.errors import InputError


def _save(tmp_path, network, trained_parts=("encoder",), name="ssp.pth"):
    path = tmp_path / name
    torch.save({"network_weights": network.state_dict(), "ssp": {"trained_parts": list(trained_parts)}}, path)
    return str(path)


def test_encoder_only_checkpoint_loads_encoder_and_leaves_decoder():
    torch.manual_seed(0)
    source, target = build_unet(), build_unet()
    decoder_before = target.decoder.stages[0][0].convs[0].conv.weight.clone()
    keys = load_pretrained_parts(target, _save(torch.tensor(0) and pytest.importorskip("pathlib").Path("."), source)
                                 if False else _save_tmp(source))
    assert keys and all(k.startswith(("encoder.", "decoder.encoder.")) for k in keys)
    assert torch.equal(target.encoder.stages[1][0].convs[0].conv.weight, source.encoder.stages[1][0].convs[0].conv.weight)
    assert torch.equal(target.decoder.stages[0][0].convs[0].conv.weight, decoder_before)


def _save_tmp(network, trained_parts=("encoder",)):
    import tempfile
    folder = tempfile.mkdtemp()
    path = f"{folder}/ssp.pth"
    torch.save({"network_weights": network.state_dict(), "ssp": {"trained_parts": list(trained_parts)}}, path)
    return path
