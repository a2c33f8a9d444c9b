"""Our checkpoint loader: safe loading, part selection, and clear errors for foreign or broken files."""

import numpy as np
import pytest
import torch

from helpers import build_unet
from nnunet_ssp.checkpoint import load_checkpoint, load_pretrained_parts
from nnunet_ssp.errors import InputError


def _save(path, network, trained_parts=("encoder",)):
    torch.save({"network_weights": network.state_dict(), "ssp": {"trained_parts": list(trained_parts)}}, path)
    return str(path)


def _conv(network, part, stage):
    stages = network.encoder.stages if part == "encoder" else network.decoder.stages
    block = stages[stage][0] if part == "encoder" else stages[stage]
    return block.convs[0].conv.weight


def test_encoder_only_checkpoint_loads_the_encoder_and_leaves_the_decoder(tmp_path):
    torch.manual_seed(0)
    source, target = build_unet(), build_unet()
    decoder_before = _conv(target, "decoder", 0).clone()
    keys = load_pretrained_parts(target, _save(tmp_path / "a.pth", source))
    assert keys and all(k.startswith(("encoder.", "decoder.encoder.")) for k in keys)
    assert torch.equal(_conv(target, "encoder", 1), _conv(source, "encoder", 1))
    assert torch.equal(_conv(target, "decoder", 0), decoder_before)


def test_encoder_and_decoder_checkpoint_loads_all_but_the_output_layer(tmp_path):
    torch.manual_seed(1)
    source, target = build_unet(), build_unet(num_classes=2)
    seg_before = target.decoder.seg_layers[-1].weight.clone()
    load_pretrained_parts(target, _save(tmp_path / "b.pth", source, ("encoder", "decoder")))
    assert torch.equal(_conv(target, "decoder", 0), _conv(source, "decoder", 0))
    assert torch.equal(target.decoder.seg_layers[-1].weight, seg_before)


def test_checkpoint_of_another_architecture_names_the_first_mismatching_key_and_both_shapes(tmp_path):
    path = _save(tmp_path / "wide.pth", build_unet(features=(16, 32, 64)))
    with pytest.raises(InputError) as error:
        load_pretrained_parts(build_unet(), path)
    message = str(error.value)
    assert "wide.pth" in message and "encoder.stages.0.0.convs.0.conv.weight" in message
    assert "(16, 1, 3, 3)" in message and "(8, 1, 3, 3)" in message


def test_checkpoint_missing_a_stage_names_the_missing_key(tmp_path):
    path = _save(tmp_path / "shallow.pth", build_unet(features=(8, 16)))
    with pytest.raises(InputError, match=r"shallow.pth does not fit this network: key encoder.stages.2"):
        load_pretrained_parts(build_unet(), path)


def test_truncated_and_foreign_files_are_refused_with_their_name(tmp_path):
    good = _save(tmp_path / "good.pth", build_unet())
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(open(good, "rb").read()[:2000])
    with pytest.raises(InputError, match="truncated.pth is not a readable checkpoint"):
        load_checkpoint(str(truncated))
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(InputError, match="notes.pth is not a readable checkpoint"):
        load_checkpoint(str(text))
    torch.save({"state_dict": {}}, tmp_path / "plain.pth")
    with pytest.raises(InputError, match="plain.pth is not an nnU-Net checkpoint"):
        load_checkpoint(str(tmp_path / "plain.pth"))
    with pytest.raises(InputError, match="missing.pth does not exist"):
        load_checkpoint(str(tmp_path / "missing.pth"))


def test_pickled_objects_are_refused_by_the_safe_loader(tmp_path):
    path = tmp_path / "unsafe.pth"
    torch.save({"network_weights": {}, "payload": object()}, path)
    with pytest.raises(InputError, match=r"unsafe.pth carries Python code \(\S*object\)"):
        load_checkpoint(str(path))


def test_numpy_scalars_of_nnunet_logs_load_under_numpy_1_and_2_names(tmp_path):
    import zipfile
    path = tmp_path / "logs.pth"
    torch.save({"network_weights": {}, "_best_ema": np.float64(0.42), "logging": {"mean_fg_dice": [np.float32(1)]}},
               path)
    assert load_checkpoint(str(path))["_best_ema"] == np.float64(0.42)
    with zipfile.ZipFile(path) as source:  # the same file as numpy 1 names the scalar
        files = {name: source.read(name) for name in source.namelist()}
    pickled = next(name for name in files if name.endswith("data.pkl"))
    files[pickled] = files[pickled].replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in files[pickled]
    older = tmp_path / "numpy1.pth"
    with zipfile.ZipFile(older, "w") as target:
        for name, data in files.items():
            target.writestr(name, data)
    assert load_checkpoint(str(older))["logging"]["mean_fg_dice"] == [np.float32(1)]
