"""Soft-edged shapes on a pixel grid: the fraction of each pixel that lies inside a contour (partial volume)."""

import numpy as np
from scipy.ndimage import gaussian_filter

# Angular profiles (contour radius as a function of angle) are tabulated on this many bins around the circle.
ANGLE_BINS = 1024


def inside_fraction(depth: np.ndarray, pixel_mm: float) -> np.ndarray:
    """Fraction of each pixel inside a contour, given the pixel centre's depth inside it in mm (negative outside)."""
    return np.clip(depth * np.float32(1.0 / pixel_mm) + np.float32(0.5), 0.0, 1.0)


def angle_bin(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Index of the angular bin of the direction (dx, dy), counter-clockwise from +x, in [0, ANGLE_BINS)."""
    theta = np.arctan2(dy, dx)
    return (np.floor(theta * np.float32(ANGLE_BINS / (2 * np.pi))).astype(np.int32)) % ANGLE_BINS


def bin_angles() -> np.ndarray:
    """The angle (radians) at the centre of each angular bin."""
    return ((np.arange(ANGLE_BINS) + 0.5) * (2 * np.pi / ANGLE_BINS)).astype(np.float32)


def lookup(tables: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """Per-frame table lookup: tables (T, ANGLE_BINS), bins (T, ...) -> values (T, ...)."""
    offsets = (np.arange(tables.shape[0], dtype=np.int32) * ANGLE_BINS).reshape((-1,) + (1,) * (bins.ndim - 1))
    return tables.reshape(-1)[bins + offsets]


def angular_bump(angles: np.ndarray, centre: float, width: float) -> np.ndarray:
    """A smooth bump on the circle, 1 at `centre` and about 0.5 at ±width/2 (radians)."""
    kappa = np.log(2.0) / (1.0 - np.cos(width / 2.0))
    return np.exp(kappa * (np.cos(angles - centre) - 1.0)).astype(np.float32)


def smoothstep(x: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, a smooth cubic in between."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def smooth_noise(rng: np.random.Generator, shape: tuple, sigma_px: float) -> np.ndarray:
    """Gaussian-correlated noise with zero mean and unit standard deviation."""
    field = gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma_px, mode="wrap")
    return field / max(float(field.std()), 1e-6)
