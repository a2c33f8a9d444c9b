"""Render a subject plan into a 4D cine (frames, slices, rows, columns) and label maps at ED and ES."""

from dataclasses import dataclass
from typing import Dict

import numpy as np

from nnunet_ssp.phantom.acquisition import acquire
from nnunet_ssp.phantom.anatomy import HeartFractions, render_heart
from nnunet_ssp.phantom.geometry import scene_grid
from nnunet_ssp.phantom.shapes import smooth_noise
from nnunet_ssp.phantom.subject import SubjectPlan
from nnunet_ssp.phantom.surroundings import render_surroundings

# Through-slice partial volume: the slice profile is sampled at these fractions of the slice thickness.
SUB_SLICES = (-1 / 3, 0.0, 1 / 3)


@dataclass
class Cine:
    """A rendered subject: the image (T, Z, Y, X) int16 and labels (Z, Y, X) uint8 keyed by 0-based frame."""
    plan: SubjectPlan
    image: np.ndarray
    labels: Dict[int, np.ndarray]


def _heart_box(plan: SubjectPlan, l: np.ndarray, a: np.ndarray) -> tuple:
    """Row and column slices of the part of the image the heart can reach."""
    heart, motion = plan.heart, plan.motion
    # Systolic thickening and the angular shape make the epicardium up to ~15 % larger than epi_radius.
    reach = (1.2 * heart.epi_radius + heart.rv_width + heart.rv_wall + float(heart.rv_fat.max())
             + float(heart.epicardial_fat.max()) + float(np.hypot(*heart.axis_drift))
             + float(np.hypot(*motion.translation)) + 2 * plan.scan.pixel_mm)
    near = np.hypot(l, a) < reach
    rows, columns = np.flatnonzero(near.any(axis=1)), np.flatnonzero(near.any(axis=0))
    if rows.size == 0:
        return slice(0, 0), slice(0, 0)
    return slice(rows[0], rows[-1] + 1), slice(columns[0], columns[-1] + 1)


def _paint_heart(background: np.ndarray, parts: HeartFractions, contrast: Dict[str, float],
                 blood_texture: np.ndarray, muscle_texture: np.ndarray) -> np.ndarray:
    """Intensity (T, h, w) of the heart and its epicardial fat painted over the static background (h, w)."""
    tissue = (parts.lv_tissue + parts.rv_wall) * (contrast["myocardium"] * muscle_texture)
    blood = (parts.lv_blood * contrast["blood"] + parts.rv_blood * contrast["rv_blood"]) * blood_texture
    fat = np.maximum(parts.envelope - parts.lv_tissue - parts.rv_wall - parts.lv_blood - parts.rv_blood, 0.0)
    return background * (1.0 - parts.envelope) + fat * contrast["fat"] + tissue + blood


def _labels_from_fractions(cavity_rv: np.ndarray, myo: np.ndarray, cavity_lv: np.ndarray) -> np.ndarray:
    """ACDC labels (0 background, 1 RV, 2 myocardium, 3 LV) by the largest fraction in each pixel."""
    background = 1.0 - cavity_rv - myo - cavity_lv
    return np.argmax(np.stack([background, cavity_rv, myo, cavity_lv]), axis=0).astype(np.uint8)


def render_cine(plan: SubjectPlan) -> Cine:
    """Render all frames and slices of `plan`, and its labels at ED and ES."""
    scan, motion, heart, acquisition = plan.scan, plan.motion, plan.heart, plan.acquisition
    rng = np.random.default_rng(plan.noise_seed)
    label_frames = sorted({motion.ed, motion.es})
    grid_l, grid_a = scene_grid(scan)
    image = np.zeros((motion.n_frames, scan.slices.count, scan.rows, scan.columns), np.int16)
    labels = {frame: np.zeros((scan.slices.count, scan.rows, scan.columns), np.uint8) for frame in label_frames}

    for k in range(scan.slices.count):
        z = scan.slices.first_depth + k * scan.slices.spacing + acquisition.breath_hold_depth[k]
        l = grid_l - np.float32(acquisition.breath_hold_shift[k, 0])
        a = grid_a - np.float32(acquisition.breath_hold_shift[k, 1])
        rows, columns = _heart_box(plan, l, a)
        l_box, a_box = l[rows, columns], a[rows, columns]
        background = render_surroundings(plan.chest, l, a, z, acquisition.contrast, scan.pixel_mm, rng)
        blood_texture = 1 + 0.06 * smooth_noise(rng, l_box.shape, 4.0 / scan.pixel_mm)
        muscle_texture = 1 + 0.08 * smooth_noise(rng, l_box.shape, 1.0)

        heart_sum = np.zeros((motion.n_frames,) + l_box.shape, np.float32)
        label_sums = np.zeros((3, len(label_frames)) + l_box.shape, np.float32)
        for offset in SUB_SLICES:
            parts = render_heart(heart, motion, motion.contraction, l_box, a_box,
                                 z + offset * scan.slices.thickness, scan.pixel_mm)
            heart_sum += _paint_heart(background[rows, columns], parts, acquisition.contrast, blood_texture,
                                      muscle_texture)
            for channel, fraction in enumerate((parts.rv_cavity_label, parts.lv_myo_label, parts.lv_cavity_label)):
                label_sums[channel] += fraction[label_frames]

        ideal = np.repeat(background[None], motion.n_frames, axis=0)
        ideal[:, rows, columns] = heart_sum / len(SUB_SLICES)
        relative_depth = k / max(scan.slices.count - 1, 1)
        image[:, k] = acquire(ideal, acquisition, relative_depth, rng)
        for i, frame in enumerate(label_frames):
            labels[frame][k, rows, columns] = _labels_from_fractions(*(label_sums[:, i] / len(SUB_SLICES)))
    return Cine(plan=plan, image=image, labels=labels)
