"""One synthetic subject: body, group, heart, motion, chest and scan, all drawn from the subject's own seed."""

import math
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from nnunet_ssp.phantom.acquisition import VENDORS, Acquisition, draw_acquisition
from nnunet_ssp.phantom.anatomy import Heart, draw_heart
from nnunet_ssp.phantom.geometry import ScanGeometry, draw_scan_geometry, plan_slices
from nnunet_ssp.phantom.groups import GROUP_NAMES, GROUPS
from nnunet_ssp.phantom.motion import CardiacMotion, draw_motion
from nnunet_ssp.phantom.surroundings import Surroundings, draw_surroundings

RV_APEX_CLEARANCE = 4.0   # mm between the RV apex at ES and the lower edge of the most apical slice


@dataclass(frozen=True)
class SubjectPlan:
    """Everything needed to render one subject; rendering needs only this and `noise_seed`."""
    index: int                      # 1-based patient number
    group: str
    height_cm: float
    weight_kg: float
    heart: Heart
    motion: CardiacMotion
    chest: Surroundings
    scan: ScanGeometry
    acquisition: Acquisition
    noise_seed: np.random.SeedSequence


def subject_seed(seed: int, index: int) -> np.random.SeedSequence:
    """The seed of subject `index` (1-based); independent of how many subjects are made, or in which process."""
    return np.random.SeedSequence(seed, spawn_key=(0, index))


def subject_group(seed: int, index: int) -> str:
    """Group of subject `index` (1-based): each block of five subjects holds every group once, in random order."""
    block, position = divmod(index - 1, len(GROUP_NAMES))
    order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, block))).permutation(len(GROUP_NAMES))
    return GROUP_NAMES[int(order[position])]


def draw_subject(seed: int, index: int, image_size: Optional[int] = None,
                 spacing: Optional[float] = None) -> SubjectPlan:
    """Draw subject `index` (1-based) of the dataset made with `seed`."""
    plan_seed, noise_seed = subject_seed(seed, index).spawn(2)
    rng = np.random.default_rng(plan_seed)
    group = subject_group(seed, index)
    height = float(np.clip(rng.normal(171, 9), 150, 198))
    bmi = float(np.clip(rng.normal(26, 4), 18, 40))
    weight = bmi * (height / 100) ** 2
    body_surface = math.sqrt(height * weight / 3600)
    heart_scale = float(np.clip((body_surface / 1.9) ** 0.4, 0.85, 1.15))
    fat_scale = (bmi / 25) ** 1.5

    heart = draw_heart(rng, GROUPS[group], heart_scale, fat_scale)
    motion = draw_motion(rng, GROUPS[group], heart.length)
    slices = plan_slices(rng, heart.length)
    # The RV must end above the most apical slice at every phase (its apex moves down as the base descends).
    lowest = slices.last_depth - 0.5 * slices.thickness - RV_APEX_CLEARANCE - motion.rv_base_descent
    rv_limit = lowest / (1 - motion.rv_base_descent / heart.length)
    heart = replace(heart, rv_length=min(heart.rv_length, rv_limit))

    chest = draw_surroundings(rng, body_scale=(height / 171) ** 0.5 * (bmi / 25) ** 0.3, fat_scale=fat_scale,
                              heart_radius=heart.epi_radius, heart_length=heart.length,
                              rv_direction=heart.rv_direction)
    vendor = VENDORS[sorted(VENDORS)[int(rng.integers(len(VENDORS)))]]
    view_centre = (15 * math.cos(heart.rv_direction), 15 * math.sin(heart.rv_direction))
    scan = draw_scan_geometry(rng, slices, view_centre, image_size, spacing, vendor.spacing)
    acquisition = draw_acquisition(rng, vendor, slices.count)
    return SubjectPlan(index=index, group=group, height_cm=round(height), weight_kg=round(weight), heart=heart,
                       motion=motion, chest=chest, scan=scan, acquisition=acquisition, noise_seed=noise_seed)
