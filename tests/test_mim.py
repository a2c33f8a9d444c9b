"""Masked image modelling: the grid mask, the masked loss, and the method on a plans-built U-Net."""

import pytest
import torch

from helpers import build_unet
from nnunet_ssp.methods.mim import MaskedImageModelling, grid_mask, masked_mse


@pytest.mark.parametrize("shape,grid,ratio", [((64, 64), 8, 0.75), ((48, 80), 8, 0.75), ((37, 53), 4, 0.5),
                                              ((64, 64), 8, 0.3)])
def test_grid_mask_masks_exactly_the_ratio_of_cells(shape, grid, ratio):
    torch.manual_seed(0)
    mask = grid_mask(16, shape, grid, ratio)
    assert mask.shape == (16, 1, *shape) and mask.dtype == torch.bool
    rows = torch.arange(shape[0]) * grid // shape[0]
    cols = torch.arange(shape[1]) * grid // shape[1]
    for image in mask[:, 0]:
        cells = torch.zeros(grid, grid)
        for r in range(grid):
            for c in range(grid):
                block = image[rows == r][:, cols == c]
                assert block.all() or not block.any(), "a cell is partly masked"
                cells[r, c] = float(block.all())
        assert cells.sum() == round(ratio * grid * grid)


def test_grid_mask_differs_between_images_and_rejects_bad_arguments():
    torch.manual_seed(1)
    mask = grid_mask(8, (32, 32))
    assert len({tuple(m.flatten().tolist()) for m in mask}) == 8
    with pytest.raises(ValueError, match="mask_ratio"):
        grid_mask(1, (32, 32), 8, 1.0)
    with pytest.raises(ValueError, match="grid"):
        grid_mask(1, (4, 32), 8, 0.5)


def test_masked_mse_ignores_unmasked_pixels():
    torch.manual_seed(2)
    target = torch.randn(4, 2, 16, 16)
    prediction = torch.randn(4, 2, 16, 16)
    mask = grid_mask(4, (16, 16), 4, 0.75)
    loss = masked_mse(prediction, target, mask)
    changed = prediction.clone()
    changed[~mask.expand_as(changed)] += 100.0
    assert torch.allclose(masked_mse(changed, target, mask), loss)
    reference = ((prediction - target) ** 2)[mask.expand_as(prediction)].mean()
    assert torch.allclose(loss, reference)
    changed[mask.expand_as(changed)] += 1.0
    assert not torch.allclose(masked_mse(changed, target, mask), loss)


def test_mim_reconstructs_one_channel_per_input_channel_and_trains_encoder_and_decoder():
    torch.manual_seed(3)
    network = build_unet(num_input_channels=2)
    method = MaskedImageModelling(network, num_input_channels=2, patch_size=(32, 32), num_epochs=1)
    image = torch.randn(3, 2, 32, 32)
    mask, reconstruction = method.reconstruct(network, image)
    assert reconstruction.shape == image.shape
    assert mask.float().mean().item() == pytest.approx(0.5)  # the default, set by the recipe study
    loss = method(network, [image], torch.zeros(3), epoch=0)
    loss.backward()
    trained = {id(p) for p in method.trained_parameters(network)}
    seg_layer = {id(p) for p in network.decoder.seg_layers.parameters()}
    assert not trained & seg_layer
    assert network.encoder.stages[0][0].convs[0].conv.weight.grad is not None
    assert network.decoder.stages[-1].convs[0].conv.weight.grad is not None
    assert method.reconstruction_head.weight.grad is not None
    assert set(method.state_dict()) == {"reconstruction_head.weight", "reconstruction_head.bias"}
