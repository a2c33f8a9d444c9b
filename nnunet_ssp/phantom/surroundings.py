"""What lies around the heart in a short-axis slice: body wall with fat, lungs, liver, abdominal organs, aorta, spine.

Same scene coordinates as the heart (l towards the patient's left, a anterior, mm, origin on the LV axis at the
base; z is the depth below the base plane). These structures do not move over the cardiac cycle: they are drawn
once per slice.
"""

import math
from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np
from scipy.ndimage import gaussian_filter

from nnunet_ssp.phantom.shapes import (ANGLE_BINS, angle_bin, angular_bump, bin_angles, inside_fraction,
                                       smooth_noise, smoothstep)

Point = Tuple[float, float]


@dataclass(frozen=True)
class Organ:
    """An ellipsoidal organ or bowel loop below the diaphragm, cut by the slices it reaches."""
    centre: Tuple[float, float, float]      # (l, a, z)
    semi_axes: Tuple[float, float, float]   # along l, a and z
    tissue: str                             # key of its intensity in the contrast table
    brightness: float                       # factor on that intensity


@dataclass(frozen=True)
class Surroundings:
    """The chest around one heart."""
    body_centre: Point
    body_radius: np.ndarray         # body outline radius by angle around body_centre (mm)
    subcutaneous_fat: np.ndarray    # thickness of the fat under the skin, by angle (breasts included)
    wall_muscle: np.ndarray         # chest-wall muscle thickness by angle (pectoral in front, thick at the back)
    spine_centre: Point             # centre of the vertebral body
    vertebra_radius: float
    aorta_centre: Point             # descending aorta
    aorta_radius: float
    root_centre: Point              # aortic root, seen in the most basal slices
    root_radius: float
    diaphragm_normal: float         # scene angle pointing from the thorax into the abdomen
    diaphragm_offset: float         # distance of the diaphragm from the LV axis at depth diaphragm_depth
    diaphragm_depth: float          # slice depth at which the diaphragm passes diaphragm_offset
    diaphragm_rise: float           # mm the diaphragm comes closer per mm of slice depth
    diaphragm_curvature: float      # dome shape (1/mm)
    liver_end: float                # position across the abdomen where the liver gives way to other organs
    organs: Tuple[Organ, ...]       # stomach, spleen, bowel
    fat_pads: Tuple[Organ, ...]     # pericardial fat in front of the RV and at the apex
    rib_angles: np.ndarray          # angles around body_centre where ribs cross the slice at the base
    rib_drift: float                # radians per mm of depth by which the rib positions move


def _wavy(rng: np.random.Generator, angles: np.ndarray, spreads: Tuple[float, ...]) -> np.ndarray:
    """1 plus a few random low-order harmonics of the angle (orders 2, 3, ...), with the given spreads."""
    profile = np.ones_like(angles)
    for order, spread in enumerate(spreads, start=2):
        profile = profile + rng.normal(0, spread) * np.cos(order * angles + rng.uniform(0, 2 * np.pi))
    return profile.astype(np.float32)


def _draw_organs(rng: np.random.Generator, normal: Point, liver_end: float, offset: float,
                 depth: float) -> Tuple[Organ, ...]:
    """Stomach, spleen and a few bowel loops on the far side of the liver, below the diaphragm."""
    tangent = (-normal[1], normal[0])

    def place(into: float, across: float, z: float, semi: Tuple[float, float, float], tissue: str,
              brightness: float) -> Organ:
        centre = (normal[0] * into + tangent[0] * across, normal[1] * into + tangent[1] * across, z)
        return Organ(centre, semi, tissue, brightness)

    stomach_fill = rng.choice([0.05, 0.6, 1.0])   # air, food, fluid
    organs = [place(offset + rng.uniform(10, 40), liver_end + rng.uniform(25, 50), depth + rng.uniform(-10, 30),
                    (rng.uniform(25, 45), rng.uniform(25, 45), rng.uniform(30, 60)), "stomach", stomach_fill),
              place(offset + rng.uniform(40, 80), liver_end + rng.uniform(60, 100), depth + rng.uniform(0, 40),
                    (rng.uniform(20, 35), rng.uniform(20, 35), rng.uniform(25, 45)), "liver", rng.uniform(1.2, 1.6))]
    for _ in range(int(rng.integers(3, 8))):
        organs.append(place(offset + rng.uniform(5, 80), liver_end + rng.uniform(0, 110),
                            depth + rng.uniform(0, 80), tuple(rng.uniform(8, 20, 3)), "stomach",
                            rng.choice([0.05, 0.5, 1.0])))
    return tuple(organs)


def _draw_fat_pads(rng: np.random.Generator, fat_scale: float, heart_radius: float, heart_length: float,
                   rv_direction: float, diaphragm_normal: float) -> Tuple[Organ, ...]:
    """Pericardial fat: a pad in front of the RV towards the base and the cardiophrenic pad near the apex."""
    pads = []
    for angle, distance, depth in ((rv_direction - math.radians(rng.uniform(30, 70)), heart_radius + 25,
                                    rng.uniform(0.0, 0.5) * heart_length),
                                   (diaphragm_normal + math.radians(rng.uniform(-70, -20)), 0.8 * heart_radius,
                                    rng.uniform(0.75, 1.05) * heart_length)):
        size = rng.uniform(8, 25) * math.sqrt(fat_scale)
        pads.append(Organ((distance * math.cos(angle), distance * math.sin(angle), depth),
                          (size * rng.uniform(0.8, 1.5), size * rng.uniform(0.8, 1.5), size * 2), "fat",
                          rng.uniform(0.85, 1.0)))
    return tuple(pads)


def draw_surroundings(rng: np.random.Generator, body_scale: float, fat_scale: float, heart_radius: float,
                      heart_length: float, rv_direction: float) -> Surroundings:
    """Draw a chest for a body of relative size `body_scale` whose fat scales with `fat_scale`."""
    angles = bin_angles()
    semi_l = rng.uniform(140, 170) * body_scale
    semi_a = rng.uniform(105, 125) * body_scale
    anterior = angular_bump(angles, math.pi / 2, math.radians(70))
    posterior = angular_bump(angles, -math.pi / 2, math.radians(80))
    breast = rng.uniform(10, 40) * fat_scale * angular_bump(angles, math.radians(rng.uniform(60, 100)), 1.2) \
        if rng.random() < 0.4 else np.zeros_like(angles)
    fat = np.maximum(rng.uniform(5, 12) * fat_scale * _wavy(rng, angles, (0.3, 0.2, 0.1)), 2.0) + breast
    wall_muscle = (rng.uniform(6, 10) + rng.uniform(4, 14) * anterior + rng.uniform(30, 45) * posterior) \
        * _wavy(rng, angles, (0.15, 0.1, 0.1))
    # The heart sits anterior and to the left in the chest, close behind the anterior chest wall.
    front = ANGLE_BINS // 4
    inner_front = rng.uniform(0, 12) + heart_radius
    centre = (-rng.uniform(35, 70), inner_front + fat[front] + wall_muscle[front] - semi_a - breast[front])
    radius = 1.0 / np.sqrt((np.cos(angles) / semi_l) ** 2 + (np.sin(angles) / semi_a) ** 2)
    radius = radius * _wavy(rng, angles, (0.03, 0.02, 0.0, 0.01)) + breast
    back = ANGLE_BINS * 3 // 4
    spine = (centre[0] + rng.normal(0, 10), centre[1] - radius[back] + fat[back] + rng.uniform(50, 62))
    vertebra = rng.uniform(13, 17)
    aorta_angle = math.radians(rng.uniform(35, 75))
    aorta_distance = vertebra + rng.uniform(14, 20)
    root_angle = rv_direction - math.radians(rng.uniform(55, 80))
    # The diaphragm lies below the heart in the image (posterior-inferior): far from it at the base, right
    # under its inferior wall towards the apex; the liver is on the patient's right, stomach and spleen left.
    diaphragm_normal = math.radians(rng.uniform(235, 290))
    diaphragm_offset, diaphragm_depth = heart_radius + rng.uniform(5, 25), rng.uniform(20, 50)
    liver_end = rng.uniform(10, 50)
    return Surroundings(
        body_centre=centre, body_radius=radius.astype(np.float32), subcutaneous_fat=fat.astype(np.float32),
        wall_muscle=wall_muscle.astype(np.float32), spine_centre=spine, vertebra_radius=vertebra,
        aorta_centre=(spine[0] + aorta_distance * math.cos(aorta_angle),
                      spine[1] + aorta_distance * math.sin(aorta_angle)),
        aorta_radius=rng.uniform(9, 13), root_centre=(heart_radius * 0.9 * math.cos(root_angle),
                                                       heart_radius * 0.9 * math.sin(root_angle)),
        root_radius=rng.uniform(11, 15),
        diaphragm_normal=diaphragm_normal, diaphragm_offset=diaphragm_offset, diaphragm_depth=diaphragm_depth,
        diaphragm_rise=rng.uniform(0.3, 0.7), diaphragm_curvature=rng.uniform(0.002, 0.006),
        liver_end=liver_end,
        organs=_draw_organs(rng, (math.cos(diaphragm_normal), math.sin(diaphragm_normal)), liver_end,
                            diaphragm_offset, diaphragm_depth),
        fat_pads=_draw_fat_pads(rng, fat_scale, heart_radius, heart_length, rv_direction, diaphragm_normal),
        rib_angles=np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(5, 10)))).astype(np.float32),
        rib_drift=rng.normal(0, 0.004))


def _over(image: np.ndarray, value, fraction: np.ndarray) -> np.ndarray:
    """Paint `value` over `image` where `fraction` says (partial volume mixes the two)."""
    return image + fraction * (value - image)


def _ellipse(l: np.ndarray, a: np.ndarray, centre: Point, semi_l: float, semi_a: float,
             pixel_mm: float) -> np.ndarray:
    """Fraction of each pixel inside an axis-aligned ellipse (soft edge about one pixel wide)."""
    rho = np.hypot((l - centre[0]) / semi_l, (a - centre[1]) / semi_a)
    return inside_fraction((1.0 - rho) * min(semi_l, semi_a), pixel_mm)


def _disc(l: np.ndarray, a: np.ndarray, centre: Point, radius: float, pixel_mm: float) -> np.ndarray:
    """Fraction of each pixel inside a circle."""
    return _ellipse(l, a, centre, radius, radius, pixel_mm)


def _speckles(rng: np.random.Generator, shape: tuple, density: float, sigma_px: float) -> np.ndarray:
    """Sparse small blobs (vessels seen in cross-section) with peak value about 1."""
    points = (rng.random(shape, dtype=np.float32) < density).astype(np.float32)
    return np.minimum(gaussian_filter(points, sigma_px) * (2 * np.pi * sigma_px ** 2), 1.0)


def _septa(rng: np.random.Generator, shape: tuple, sigma_px: float) -> np.ndarray:
    """Thin wiggly lines (connective tissue septa in fat): 1 on a line, 0 away from it."""
    return np.exp(-(smooth_noise(rng, shape, sigma_px) / 0.15) ** 2)


def _chest_wall(chest: Surroundings, l: np.ndarray, a: np.ndarray, z: float, contrast: Dict[str, float],
                pixel_mm: float, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Body wall intensity, the fraction inside the thoracic cavity, and the depth inside the wall muscle."""
    bl, ba = l - chest.body_centre[0], a - chest.body_centre[1]
    bins = angle_bin(bl, ba)
    depth = chest.body_radius[bins] - np.hypot(bl, ba)
    muscle_depth = depth - chest.subcutaneous_fat[bins]
    cavity = inside_fraction(muscle_depth - chest.wall_muscle[bins], pixel_mm)
    septa = _septa(rng, l.shape, 3.0 / pixel_mm)
    image = inside_fraction(depth, pixel_mm) * contrast["fat"] * (1 - 0.3 * septa)
    image = _over(image, contrast["muscle"] * (1 + 0.3 * septa), inside_fraction(muscle_depth, pixel_mm))
    # Ribs cross the slice obliquely, so their positions move from slice to slice.
    for angle in chest.rib_angles + chest.rib_drift * z:
        rib_bin = int(angle * ANGLE_BINS / (2 * np.pi)) % ANGLE_BINS
        rib_radius = chest.body_radius[rib_bin] - chest.subcutaneous_fat[rib_bin] - 0.6 * chest.wall_muscle[rib_bin]
        centre = (chest.body_centre[0] + rib_radius * math.cos(angle),
                  chest.body_centre[1] + rib_radius * math.sin(angle))
        image = _over(image, contrast["bone"], _ellipse(l, a, centre, 6.5, 6.5, pixel_mm) * (1 - cavity))
        image = _over(image, contrast["marrow"], _ellipse(l, a, centre, 4.5, 4.5, pixel_mm) * (1 - cavity))
    return image, cavity, muscle_depth - chest.wall_muscle[bins]


def _abdomen(chest: Surroundings, l: np.ndarray, a: np.ndarray, z: float, image: np.ndarray,
             inner_depth: np.ndarray, contrast: Dict[str, float], pixel_mm: float,
             rng: np.random.Generator) -> np.ndarray:
    """Paint the diaphragm, liver and the organs beside it where the slice passes below the diaphragm."""
    normal = (math.cos(chest.diaphragm_normal), math.sin(chest.diaphragm_normal))
    height = chest.diaphragm_offset - chest.diaphragm_rise * (z - chest.diaphragm_depth)
    into = l * normal[0] + a * normal[1]
    across = -l * normal[1] + a * normal[0]
    below = into - height - chest.diaphragm_curvature * across ** 2
    within_body = inside_fraction(inner_depth + 15, pixel_mm)
    image = _over(image, contrast["muscle"], inside_fraction(below, pixel_mm) * within_body)
    abdomen = inside_fraction(below - 4, pixel_mm) * within_body
    liver = contrast["liver"] * (1 + 0.8 * _speckles(rng, l.shape, 0.003, 1.0) + 0.08 * smooth_noise(rng, l.shape, 6))
    beyond_liver = smoothstep((across - chest.liver_end) / 15.0)
    image = _over(image, liver + beyond_liver * (contrast["mediastinum"] - liver), abdomen)
    return _paint_organs(image, chest.organs, l, a, z, contrast, pixel_mm, abdomen * beyond_liver)


def _paint_organs(image: np.ndarray, organs: Tuple[Organ, ...], l: np.ndarray, a: np.ndarray, z: float,
                  contrast: Dict[str, float], pixel_mm: float, where: np.ndarray) -> np.ndarray:
    """Paint the cross-sections at depth z of ellipsoidal organs, limited to the region `where`."""
    for organ in organs:
        scale = 1.0 - ((z - organ.centre[2]) / organ.semi_axes[2]) ** 2
        if scale > 0.01:
            shrink = math.sqrt(scale)
            inside = _ellipse(l, a, organ.centre[:2], organ.semi_axes[0] * shrink, organ.semi_axes[1] * shrink,
                              pixel_mm)
            image = _over(image, contrast[organ.tissue] * organ.brightness, inside * where)
    return image


def render_surroundings(chest: Surroundings, l: np.ndarray, a: np.ndarray, z: float, contrast: Dict[str, float],
                        pixel_mm: float, rng: np.random.Generator) -> np.ndarray:
    """Intensity image of everything but the heart on the grid (l, a) at slice depth z."""
    image, cavity, inner_depth = _chest_wall(chest, l, a, z, contrast, pixel_mm, rng)
    vessels = _speckles(rng, l.shape, 0.001, 0.7) + 0.5 * np.clip(smooth_noise(rng, l.shape, 2.0) - 2.0, 0, 1)
    image = _over(image, contrast["lung"] + 0.2 * contrast["blood"] * vessels, cavity)
    oesophagus = (chest.aorta_centre[0] - 1.6 * chest.aorta_radius, chest.aorta_centre[1] + 0.6 * chest.aorta_radius)
    image = _over(image, contrast["mediastinum"], _disc(l, a, oesophagus, 8, pixel_mm) * cavity)
    image = _paint_organs(image, chest.fat_pads, l, a, z, contrast, pixel_mm, cavity)
    image = _abdomen(chest, l, a, z, image, inner_depth, contrast, pixel_mm, rng)

    image = _over(image, contrast["bone"], _disc(l, a, chest.spine_centre, chest.vertebra_radius + 2, pixel_mm))
    image = _over(image, contrast["marrow"], _disc(l, a, chest.spine_centre, chest.vertebra_radius, pixel_mm))
    canal = (chest.spine_centre[0], chest.spine_centre[1] - chest.vertebra_radius - 11)
    image = _over(image, contrast["bone"], _disc(l, a, canal, 10, pixel_mm))
    image = _over(image, contrast["csf"], _disc(l, a, canal, 6.5, pixel_mm))
    image = _over(image, contrast["muscle"], _disc(l, a, chest.aorta_centre, chest.aorta_radius + 1.5, pixel_mm))
    image = _over(image, contrast["blood"], _disc(l, a, chest.aorta_centre, chest.aorta_radius, pixel_mm))
    root = chest.root_radius * (1 - smoothstep((z - 2) / 12))
    if root > 0.5:
        image = _over(image, contrast["blood"], _disc(l, a, chest.root_centre, root, pixel_mm))

    texture = 1 + 0.07 * smooth_noise(rng, l.shape, 1.5)
    return (image * texture).astype(np.float32)
