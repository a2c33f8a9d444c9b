"""The heart: the LV a thick-walled truncated ellipsoid, the RV a crescent wrapping the septum, per slice and frame.

Coordinates: the scene plane (l, a) in mm (l towards the patient's left, a anterior, both in the short-axis plane),
origin on the LV long axis; z is the depth in mm below the end-diastolic base plane, towards the apex.
"""

import math
from dataclasses import dataclass
from typing import Tuple

import numpy as np

from nnunet_ssp.phantom.groups import GroupProfile
from nnunet_ssp.phantom.motion import CardiacMotion, anatomical_depth, thickened_wall
from nnunet_ssp.phantom.shapes import (ANGLE_BINS, angle_bin, angular_bump, bin_angles, inside_fraction, lookup,
                                       smoothstep)

ATRIAL_WALL = 2.0   # mm; above the valve planes the chambers are atria with a thin wall


@dataclass(frozen=True)
class Heart:
    """The end-diastolic shape of one heart; angular profiles are tabulated over scene angles (ANGLE_BINS)."""
    group: str
    length: float                   # LV epicardial length, base plane to apex
    endo_length: float              # LV cavity length (length minus the apical cap)
    epi_radius: float               # LV epicardial radius at the base
    endo_radius: float              # LV cavity radius at the base
    taper: float                    # exponent k of r(u) = R * sqrt(1 - (u / L)^k)
    rv_direction: float             # scene angle from the LV centre to the RV (the septum centre)
    epi_shape: np.ndarray           # relative epicardial radius by angle (mild non-circularity)
    wall_factor: np.ndarray         # relative wall thickness by angle (septal hypertrophy)
    infarct_shape: np.ndarray       # 0..1 infarct weight by angle (all zero without an infarct)
    infarct_start: float            # depth where the infarct begins; it reaches the apex
    infarct_thinning: float         # fraction of wall thickness lost in the infarct
    infarct_akinesia: float         # fraction of contraction lost in the infarct
    epicardial_fat: np.ndarray      # fat thickness around the LV by angle (mm)
    trabecular_depth: float         # how far trabeculae reach into the cavity (mm)
    trabecular_waves: np.ndarray    # rows (order, amplitude, phase, phase drift per mm) of the trabecular pattern
    papillary_angles: Tuple[float, float]   # scene angles of the two papillary muscles
    papillary_radius: Tuple[float, float]
    papillary_span: Tuple[float, float]     # depths between which the papillary muscles exist
    rv_width: float                 # largest RV cavity width (at the base), measured from the LV epicardium
    rv_shape: np.ndarray            # RV width by angle relative to rv_width: 1 mid-crescent, 0 beyond the tips
    rv_wall: float                  # RV free wall thickness
    rv_length: float                # depth where the RV ends (before the most apical slice)
    rv_fat: np.ndarray              # fat thickness over the RV free wall by angle (a pad in front)
    axis_drift: Tuple[float, float] # in-plane offset of the LV axis at the apex relative to the base


def draw_heart(rng: np.random.Generator, group: GroupProfile, scale: float, fat_scale: float) -> Heart:
    """Draw one end-diastolic heart of `group`; `scale` sizes it to the body, `fat_scale` its epicardial fat."""
    angles = bin_angles()
    length = rng.uniform(*group.lv_length) * scale
    endo_radius = rng.uniform(*group.lv_endo_radius) * scale
    wall = rng.uniform(*group.wall_base) * math.sqrt(scale)
    rv_direction = math.radians(rng.uniform(150, 185))
    septal = angles - rv_direction   # angle measured from the septum centre

    epi_shape = np.ones(ANGLE_BINS, np.float32)
    for order, spread in ((2, 0.04), (3, 0.02), (4, 0.01)):
        epi_shape += rng.normal(0, spread) * np.cos(order * septal + rng.uniform(0, 2 * np.pi)).astype(np.float32)
    wall_factor = 1.0 + rng.uniform(*group.septal_thickening) * angular_bump(
        septal, rng.normal(0, 0.3), math.radians(rng.uniform(90, 140)))

    infarct_shape = np.zeros(ANGLE_BINS, np.float32)
    infarct_start, thinning, akinesia = length, 0.0, 0.0
    if group.infarct:
        # Anterior, inferior or lateral territory (septal angle -90, +90, 180 degrees).
        centre = math.radians(rng.choice([-90.0, 90.0, 180.0, -60.0]) + rng.normal(0, 15))
        infarct_shape = angular_bump(septal, centre, math.radians(rng.uniform(70, 130)))
        infarct_start = rng.uniform(0.1, 0.55) * length
        thinning, akinesia = rng.uniform(0.35, 0.6), rng.uniform(0.8, 1.0)

    # The crescent wraps further round the anterior side (negative septal angles) than the inferior side.
    rv_wrap = math.radians(rng.uniform(*group.rv_wrap_deg))
    wrap_anterior, wrap_inferior = rv_wrap * rng.uniform(1.0, 1.2), rv_wrap * rng.uniform(0.8, 1.0)
    centred = np.angle(np.exp(1j * septal))
    reach = np.where(centred < 0, -centred / wrap_anterior, centred / wrap_inferior)
    rv_shape = np.clip(1.0 - reach ** 2, 0.0, 1.0) ** rng.uniform(0.9, 1.5)
    # Fat gathers in the grooves where the RV meets the LV; elsewhere the wall mostly touches lung or pericardium.
    groove = (rng.uniform(0.5, 1.5) * angular_bump(septal, wrap_inferior, 0.5)
              + rng.uniform(0.5, 1.5) * angular_bump(septal, -wrap_anterior, 0.5))
    epicardial_fat = fat_scale * (rng.uniform(0.0, 0.8) + rng.uniform(1.5, 4.0) * groove).astype(np.float32)

    n_waves = 7
    waves = np.stack([rng.integers(5, 17, n_waves), rng.uniform(0.5, 1.0, n_waves),
                      rng.uniform(0, 2 * np.pi, n_waves), rng.normal(0, 0.04, n_waves)], axis=1)
    trabecular = rng.uniform(1.2, 3.5) * (1.4 if group.name == "DCM" else 1.0)
    papillary_size = 1.3 if group.name == "HCM" else 1.0
    drift_angle = rng.uniform(0, 2 * np.pi)
    drift = rng.uniform(0, 10)
    return Heart(
        group=group.name, length=length, endo_length=length - rng.uniform(*group.apical_cap),
        epi_radius=endo_radius + wall, endo_radius=endo_radius, taper=rng.uniform(*group.taper),
        rv_direction=rv_direction, epi_shape=epi_shape, wall_factor=wall_factor.astype(np.float32),
        infarct_shape=infarct_shape, infarct_start=infarct_start, infarct_thinning=thinning,
        infarct_akinesia=akinesia, epicardial_fat=epicardial_fat,
        trabecular_depth=trabecular, trabecular_waves=waves.astype(np.float32),
        papillary_angles=(rv_direction + math.radians(rng.normal(-145, 12)),
                          rv_direction + math.radians(rng.normal(100, 12))),
        papillary_radius=tuple(rng.uniform(2.8, 5.0, 2) * papillary_size),
        papillary_span=(rng.uniform(0.1, 0.25) * length, rng.uniform(0.7, 0.82) * length),
        rv_width=rng.uniform(*group.rv_width) * scale, rv_shape=rv_shape.astype(np.float32),
        rv_wall=rng.uniform(2.5, 4.0),
        rv_length=rng.uniform(0.78, 0.92) * length,
        rv_fat=(fat_scale * (rng.uniform(0.0, 1.5) + rng.uniform(1.0, 6.0) * angular_bump(
            septal, -0.6 * wrap_anterior, 1.0))).astype(np.float32),
        axis_drift=(drift * math.cos(drift_angle), drift * math.sin(drift_angle)))


@dataclass
class HeartFractions:
    """Per frame (T, h, w): fraction of each pixel covered by each part of the heart, and by its label."""
    lv_blood: np.ndarray        # LV blood pool (without papillary muscles and trabeculae)
    lv_tissue: np.ndarray       # LV myocardium, papillary muscles and trabeculae
    rv_blood: np.ndarray
    rv_wall: np.ndarray         # RV free wall and trabeculae
    envelope: np.ndarray        # heart plus its epicardial fat
    lv_cavity_label: np.ndarray # LV cavity as annotated (papillary muscles and trabeculae included)
    lv_myo_label: np.ndarray
    rv_cavity_label: np.ndarray


def _profile(u: np.ndarray, length: float, radius: float, taper: float) -> np.ndarray:
    """Radius of a truncated ellipsoid of `length` at depths u (zero beyond its tip)."""
    ratio = np.clip(u / length, 0.0, 1.0)
    return radius * np.sqrt(np.clip(1.0 - ratio ** taper, 0.0, 1.0))


def _twisted(table: np.ndarray, shift_bins: np.ndarray) -> np.ndarray:
    """Per-frame copies of an angular table rotated by `shift_bins` bins: (K,) -> (T, K)."""
    index = (np.arange(ANGLE_BINS)[None, :] - shift_bins[:, None]) % ANGLE_BINS
    return table[index]


def _wall_radii(heart: Heart, motion: CardiacMotion, u: np.ndarray, contraction: np.ndarray,
                shift: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Cavity and epicardial radius tables (T, K) at anatomical depths u after contraction."""
    r_epi = _profile(u, heart.length, heart.epi_radius, heart.taper)[:, None] * _twisted(heart.epi_shape, shift)
    r_endo_nominal = _profile(u, heart.endo_length, heart.endo_radius, heart.taper)[:, None]
    nominal_wall = r_epi - r_endo_nominal * _twisted(heart.epi_shape, shift)
    infarct = _twisted(heart.infarct_shape, shift) * smoothstep((u[:, None] - heart.infarct_start) / 10.0)
    wall = nominal_wall * _twisted(heart.wall_factor, shift) * (1.0 - heart.infarct_thinning * infarct)
    r_endo = np.maximum(r_epi - wall, 0.0)
    shortening = np.minimum(motion.radial_shortening * (1.0 + 0.25 * u[:, None] / heart.length), 0.7)
    shortening = shortening * (1.0 - heart.infarct_akinesia * infarct)
    return thickened_wall(r_endo, r_epi, shortening, contraction[:, None], heart.length, motion.base_descent)


def _trabeculae(heart: Heart, z: float, u: np.ndarray, shift: np.ndarray, contraction: np.ndarray) -> np.ndarray:
    """Depth (T, K) to which trabeculae reach into the cavity: spiky in angle, changing slowly with slice depth z."""
    angles = bin_angles()
    pattern = np.zeros(ANGLE_BINS, np.float32)
    for order, amplitude, phase, drift in heart.trabecular_waves:
        pattern += amplitude * np.cos(order * angles + phase + drift * z)
    pattern /= max(float(heart.trabecular_waves[:, 1].sum()) * 0.5, 1e-6)
    presence = 1.0 - smoothstep((u - 0.85 * heart.endo_length) / (0.1 * heart.endo_length))
    depth = heart.trabecular_depth * (1.0 + 0.5 * contraction) * presence
    return (depth[:, None] * _twisted(np.maximum(pattern, 0.0) ** 1.5, shift)).astype(np.float32)


def _rv_width(heart: Heart, motion: CardiacMotion, u_rv: np.ndarray, contraction: np.ndarray,
              shift: np.ndarray) -> np.ndarray:
    """RV cavity width (T, K) outside the LV epicardium: a crescent that narrows and wraps less towards its apex."""
    presence = np.sqrt(np.clip(1.0 - (np.maximum(u_rv, 0.0) / heart.rv_length) ** 2, 0.0, 1.0))
    width = heart.rv_width * presence * (1.0 - motion.rv_shortening * contraction)
    narrowing = 1.0 / (0.3 + 0.7 * presence)
    return (width[:, None] * _twisted(heart.rv_shape, shift) ** narrowing[:, None]).astype(np.float32)


def render_heart(heart: Heart, motion: CardiacMotion, contraction: np.ndarray, l: np.ndarray, a: np.ndarray,
                 z: float, pixel_mm: float) -> HeartFractions:
    """Fractions of each part of the heart on the grid (l, a) at slice depth z, one frame per contraction value."""
    contraction = np.asarray(contraction, np.float32)
    u = anatomical_depth(z, contraction, heart.length, motion.base_descent).astype(np.float32)
    u_rv = anatomical_depth(z, contraction, heart.length, motion.rv_base_descent).astype(np.float32)
    ventricular, rv_ventricular = u >= 0, u_rv >= 0
    u_valve = np.maximum(u, 0.0)
    twist = motion.twist * contraction * u_valve / heart.length
    shift = np.round(twist * (ANGLE_BINS / (2 * np.pi))).astype(np.int64)

    r_endo, r_epi = _wall_radii(heart, motion, u_valve, contraction, shift)
    # Above the base plane the LV is the left atrium: a thin wall around a slightly smaller blood pool.
    atrium = 0.85 * r_endo
    r_endo = np.where(ventricular[:, None], r_endo, atrium)
    r_epi = np.where(ventricular[:, None], r_epi, atrium + ATRIAL_WALL)
    trabecular = np.where(ventricular[:, None], _trabeculae(heart, z, u_valve, shift, contraction), 0.0)

    drift = (u_valve / heart.length) ** 2
    centre_l = heart.axis_drift[0] * drift + motion.translation[0] * contraction
    centre_a = heart.axis_drift[1] * drift + motion.translation[1] * contraction
    dl = l[None] - centre_l[:, None, None].astype(np.float32)
    da = a[None] - centre_a[:, None, None].astype(np.float32)
    r = np.sqrt(dl * dl + da * da)
    bins = angle_bin(dl, da)

    epi = inside_fraction(lookup(r_epi, bins) - r, pixel_mm)
    endo = np.minimum(inside_fraction(lookup(r_endo, bins) - r, pixel_mm), epi)
    blood = np.minimum(inside_fraction(lookup(r_endo - trabecular, bins) - r, pixel_mm), endo)
    blood = blood * (1.0 - _papillary_fraction(heart, u_valve, contraction, r_endo, dl, da, pixel_mm, ventricular))

    rv_width = _rv_width(heart, motion, u_rv, contraction, shift)
    rv_cavity = np.maximum(inside_fraction(lookup(r_epi + rv_width, bins) - r, pixel_mm) - epi, 0.0)
    # Coarser trabeculae (and the moderator band) reach in from the RV free wall; they belong to the cavity label.
    rv_trabecular = np.roll(trabecular, ANGLE_BINS // 3, axis=1) * np.minimum(rv_width / 6.0, 1.0)
    rv_core = inside_fraction(lookup(r_epi + rv_width - rv_trabecular, bins) - r, pixel_mm)
    rv_blood = np.minimum(np.maximum(rv_core - epi, 0.0), rv_cavity)
    # The free wall and its fat thin out towards the crescent tips.
    presence = np.minimum(rv_width / 3.0, 1.0)
    rv_outer = inside_fraction(lookup(r_epi + rv_width + heart.rv_wall * presence, bins) - r, pixel_mm)
    rv_wall = np.maximum(rv_outer - epi - rv_blood, 0.0)
    fat_radius = np.maximum(r_epi + heart.epicardial_fat[None, :],
                            r_epi + rv_width + (heart.rv_wall + heart.rv_fat[None, :]) * presence)
    envelope = np.maximum(inside_fraction(lookup(fat_radius, bins) - r, pixel_mm), rv_outer)

    lv_labeled = ventricular[:, None, None].astype(np.float32)
    rv_labeled = (rv_ventricular & ventricular)[:, None, None].astype(np.float32)
    return HeartFractions(
        lv_blood=blood, lv_tissue=epi - blood, rv_blood=rv_blood, rv_wall=rv_wall, envelope=envelope,
        lv_cavity_label=endo * lv_labeled, lv_myo_label=(epi - endo) * lv_labeled,
        rv_cavity_label=rv_cavity * rv_labeled)


def _papillary_fraction(heart: Heart, u: np.ndarray, contraction: np.ndarray, r_endo: np.ndarray, dl: np.ndarray,
                        da: np.ndarray, pixel_mm: float, ventricular: np.ndarray) -> np.ndarray:
    """Fraction (T, h, w) covered by the two papillary muscles, which hang from the wall into the cavity.

    dl, da: offsets (T, h, w) of the pixels from the LV centre; r_endo: cavity radius tables (T, K)."""
    start, end = heart.papillary_span
    presence = smoothstep((u - start) / 8.0) * (1.0 - smoothstep((u - end) / 8.0)) * ventricular
    total = np.zeros(dl.shape, np.float32)
    for angle, radius in zip(heart.papillary_angles, heart.papillary_radius):
        size = radius * presence * (1.0 + 0.3 * contraction)
        if size.max() <= 0.5:
            continue
        wall_bin = int(angle * ANGLE_BINS / (2 * np.pi)) % ANGLE_BINS
        reach = np.maximum(r_endo[:, wall_bin] - 0.6 * size, 0.0)
        pl = (reach * math.cos(angle))[:, None, None]
        pa = (reach * math.sin(angle))[:, None, None]
        distance = np.sqrt((dl - pl) ** 2 + (da - pa) ** 2)
        muscle = inside_fraction(size[:, None, None].astype(np.float32) - distance, pixel_mm)
        total = np.maximum(total, muscle * (size > 0.5)[:, None, None])
    return total
