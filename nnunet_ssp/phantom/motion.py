"""Cardiac motion: the contraction curve over the cycle, base descent, and wall thickening that keeps volume."""

import math
from dataclasses import dataclass
from typing import Tuple

import numpy as np

from nnunet_ssp.phantom.groups import GroupProfile
from nnunet_ssp.phantom.shapes import smoothstep

FRAMES_RANGE = (15, 30)
ES_FRACTION_RANGE = (0.30, 0.45)   # ES lies this far (fraction of the cycle) after ED


@dataclass(frozen=True)
class CardiacMotion:
    """How one heart moves: timing of the cycle and the amplitude of each motion component."""
    n_frames: int
    ed: int                          # 0-based frame index of end-diastole
    es: int                          # 0-based frame index of end-systole
    contraction: np.ndarray          # per frame: 0 at ED, 1 at ES, smooth in between
    radial_shortening: float         # LV cavity radius shrinks by this fraction at ES
    base_descent: float              # mm the LV base moves towards the (fixed) apex at ES
    rv_shortening: float             # RV width shrinks by this fraction at ES
    rv_base_descent: float           # mm the tricuspid plane moves at ES
    translation: Tuple[float, float] # in-plane shift (mm) of the whole heart at ES
    twist: float                     # rotation (radians) of the apex relative to the base at ES


def contraction_curve(n_frames: int, ed: int, es: int, atrial_share: float, rapid_filling_end: float,
                      atrial_start: float) -> np.ndarray:
    """Contraction state per frame: cosine systole from ED to ES, rapid filling, diastasis, atrial kick."""
    phase = ((np.arange(n_frames) - ed) % n_frames) / n_frames
    es_phase = ((es - ed) % n_frames) / n_frames
    systole = 0.5 * (1.0 - np.cos(np.pi * np.minimum(phase / es_phase, 1.0)))
    diastole_phase = np.clip((phase - es_phase) / (1.0 - es_phase), 0.0, 1.0)
    relaxed = ((1.0 - atrial_share) * smoothstep(diastole_phase / rapid_filling_end)
               + atrial_share * smoothstep((diastole_phase - atrial_start) / (1.0 - atrial_start)))
    return np.where(phase <= es_phase, systole, 1.0 - relaxed).astype(np.float32)


def draw_motion(rng: np.random.Generator, group: GroupProfile, lv_length: float) -> CardiacMotion:
    """Draw the cycle (frames, ED, ES) and the motion amplitudes of one heart of `group`."""
    n_frames = int(rng.integers(FRAMES_RANGE[0], FRAMES_RANGE[1] + 1))
    # Most ACDC cines start at ED; some start elsewhere in the cycle.
    ed = 0 if rng.random() < 0.7 else int(rng.integers(0, n_frames))
    es_offset = int(rng.integers(math.ceil(ES_FRACTION_RANGE[0] * n_frames),
                                 math.floor(ES_FRACTION_RANGE[1] * n_frames) + 1))
    es = (ed + es_offset) % n_frames
    contraction = contraction_curve(n_frames, ed, es, atrial_share=rng.uniform(0.15, 0.35),
                                    rapid_filling_end=rng.uniform(0.3, 0.5), atrial_start=rng.uniform(0.62, 0.8))
    long_shortening = rng.uniform(*group.long_shortening)
    angle = rng.uniform(0, 2 * np.pi)
    shift = rng.uniform(1.0, 4.0)
    return CardiacMotion(
        n_frames=n_frames, ed=ed, es=es, contraction=contraction,
        radial_shortening=rng.uniform(*group.radial_shortening),
        base_descent=long_shortening * lv_length,
        rv_shortening=rng.uniform(*group.rv_shortening),
        rv_base_descent=long_shortening * lv_length * rng.uniform(1.2, 1.6),
        translation=(shift * math.cos(angle), shift * math.sin(angle)),
        twist=math.radians(rng.uniform(4, 12)))


def anatomical_depth(z: float, contraction: np.ndarray, length: float, descent: float) -> np.ndarray:
    """Depth below the end-diastolic base plane of the tissue found at slice depth z, with the apex held fixed."""
    moved = descent * contraction
    return length * (z - moved) / (length - moved)


def thickened_wall(r_endo: np.ndarray, r_epi: np.ndarray, shortening: np.ndarray, contraction: np.ndarray,
                   length: float, descent: float) -> Tuple[np.ndarray, np.ndarray]:
    """Cavity and epicardial radii after contraction, keeping the myocardial volume of each angular sector."""
    moved = descent * contraction
    endo = r_endo * (1.0 - shortening * contraction)
    # The wall is squeezed along the long axis by L / (L - moved), so its cross-section grows by that factor.
    epi = np.sqrt(endo * endo + (r_epi * r_epi - r_endo * r_endo) * (length / (length - moved)))
    return endo.astype(np.float32), epi.astype(np.float32)
