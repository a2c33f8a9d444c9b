"""Augmented views for the contrastive and self-distillation methods, built from nnU-Net's own transforms.

nnU-Net applies each augmentation with a low probability, which is right for segmentation but leaves two views of
one crop nearly identical. Here the same batchgeneratorsv2 transforms run at SSP strength: rotation, zoom and
translation always, noise, blur, brightness, contrast and gamma each with p 0.5. These probabilities and ranges are
this project's, not the reference study's (docs/studies/protocol_deviations.md); DINO's crop scales and blur are
the study's.
"""

from typing import Sequence, Tuple

import torch
from batchgeneratorsv2.helpers.scalar_type import RandomScalar
from batchgeneratorsv2.transforms.base.basic_transform import ImageOnlyTransform
from batchgeneratorsv2.transforms.intensity.brightness import MultiplicativeBrightnessTransform
from batchgeneratorsv2.transforms.intensity.contrast import BGContrast, ContrastTransform
from batchgeneratorsv2.transforms.intensity.gamma import GammaTransform
from batchgeneratorsv2.transforms.intensity.gaussian_noise import GaussianNoiseTransform
from batchgeneratorsv2.transforms.noise.gaussian_blur import GaussianBlurTransform
from batchgeneratorsv2.transforms.spatial.mirroring import MirrorTransform
from batchgeneratorsv2.transforms.utils.pseudo2d import Convert2DTo3DTransform, Convert3DTo2DTransform
from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from batchgeneratorsv2.transforms.utils.random import RandomTransform
from nnunetv2.configuration import ANISO_THRESHOLD

# Zoom ranges as region side / output side (batchgeneratorsv2: larger = smaller objects), as the reference study
# gives them. DINO's global crops (output at the patch size) come from regions 0.52-1.4 times its side, 14-100 % of
# the largest one's area; its local crops (output at half the patch size) from regions 0.31-0.52 times their own side.
FULL_ZOOM: Tuple[float, float] = (0.7, 1.4)
DINO_GLOBAL_ZOOM: Tuple[float, float] = (1.4 * 0.14 ** 0.5, 1.4)
DINO_LOCAL_ZOOM: Tuple[float, float] = (1.4 * 0.05 ** 0.5, 1.4 * 0.14 ** 0.5)
BLUR_SIGMA: Tuple[float, float] = (0.5, 1.5)
DINO_STRONG_BLUR_SIGMA: Tuple[float, float] = (0.1, 2.0)  # DINO's first global crop, always blurred


class SolariseTransform(ImageOnlyTransform):
    """Reflect intensities above each channel's median about it: the z-scored analogue of solarisation."""

    def _apply_to_image(self, img: torch.Tensor, **params) -> torch.Tensor:
        median = img.flatten(1).median(dim=1).values.view(-1, *([1] * (img.ndim - 1)))
        return torch.where(img > median, 2 * median - img, img)


def ssp_view(patch_size: Sequence[int], rotation: RandomScalar, mirror_axes: Sequence[int],
             zoom: Tuple[float, float] = FULL_ZOOM, p_blur: float = 0.5, p_solarise: float = 0.0,
             blur_sigma: Tuple[float, float] = BLUR_SIGMA) -> ComposeTransforms:
    """One view: random rotation, zoom and translation to `patch_size`, then intensity augmentations at p 0.5.

    A 3D patch with few slices (nnU-Net's dummy-2D rule) is rotated, zoomed, moved and blurred in-plane only, all its
    slices alike, as nnU-Net's own transforms do; its slice axis keeps the loader's crop.
    """
    in_plane = in_plane_only(patch_size)
    spatial_size = tuple(patch_size[1:] if in_plane else patch_size)
    spatial = SpatialTransform(spatial_size, patch_center_dist_from_border=[p // 2 for p in spatial_size],
                               random_crop=True, p_rotation=1.0, rotation=rotation, p_scaling=1.0, scaling=zoom,
                               p_synchronize_scaling_across_axes=1)
    spatial_and_filters = [
        spatial,
        RandomTransform(GaussianNoiseTransform(noise_variance=(0, 0.1), p_per_channel=1, synchronize_channels=True),
                        apply_probability=0.5),
        RandomTransform(GaussianBlurTransform(blur_sigma=blur_sigma, synchronize_channels=True,
                                              synchronize_axes=True, p_per_channel=1), apply_probability=p_blur),
    ]
    transforms = [
        *([Convert3DTo2DTransform(), *spatial_and_filters, Convert2DTo3DTransform()] if in_plane
          else spatial_and_filters),
        RandomTransform(MultiplicativeBrightnessTransform(multiplier_range=BGContrast((0.7, 1.3)),
                                                          synchronize_channels=True, p_per_channel=1),
                        apply_probability=0.5),
        RandomTransform(ContrastTransform(contrast_range=BGContrast((0.7, 1.3)), preserve_range=True,
                                          synchronize_channels=True, p_per_channel=1), apply_probability=0.5),
        RandomTransform(GammaTransform(gamma=BGContrast((0.7, 1.5)), p_invert_image=0, synchronize_channels=True,
                                       p_per_channel=1, p_retain_stats=1), apply_probability=0.5),
        RandomTransform(SolariseTransform(), apply_probability=p_solarise),
    ]
    if mirror_axes:
        transforms.append(MirrorTransform(allowed_axes=tuple(mirror_axes)))
    return ComposeTransforms(transforms)


def in_plane_only(patch_size: Sequence[int]) -> bool:
    """Whether nnU-Net augments this patch in 2D, slice by slice: a 3D patch with few slices (do_dummy_2d_data_aug)."""
    return len(patch_size) == 3 and max(patch_size) / patch_size[0] > ANISO_THRESHOLD
