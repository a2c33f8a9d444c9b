"""The scanner: vendor profiles (tissue contrast, intensity scale, noise, resolution), coil bias, breath-holds.

Tissue intensities are bSSFP-like, relative to LV blood: blood and fat bright, myocardium and muscle dark, lungs
almost black. The image is low-pass filtered in k-space (acquired resolution below the reconstructed grid, with
some ringing) together with complex Gaussian noise, so the magnitude image has correlated Rician noise.
"""

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np
import scipy.fft

Range = Tuple[float, float]


@dataclass(frozen=True)
class VendorProfile:
    """Ranges a scanner draws its per-subject settings from."""
    name: str
    contrast: Dict[str, Range]      # tissue -> intensity relative to LV blood
    noise: Range                    # noise standard deviation relative to LV blood
    scale: Range                    # stored value of LV blood
    resolution: Range               # fraction of k-space acquired (per axis)
    filter_taper: Range             # fraction of the acquired k-space under the cosine filter edge
    bias: float                     # spread of the coil-sensitivity polynomial coefficients
    spacing: Range                  # in-plane pixel size (mm)


_COMMON = {"blood": (1.0, 1.0), "rv_blood": (0.88, 1.0), "lung": (0.03, 0.08), "stomach": (0.6, 0.9),
           "marrow": (0.45, 0.7), "bone": (0.05, 0.1), "csf": (0.9, 1.2), "mediastinum": (0.4, 0.6)}

VENDORS: Dict[str, VendorProfile] = {
    "A": VendorProfile("A", {**_COMMON, "myocardium": (0.26, 0.33), "fat": (0.95, 1.2), "muscle": (0.22, 0.3),
                             "liver": (0.3, 0.38)},
                       noise=(0.025, 0.05), scale=(180, 350), resolution=(0.7, 0.9), filter_taper=(0.15, 0.3),
                       bias=0.2, spacing=(1.25, 1.6)),
    "B": VendorProfile("B", {**_COMMON, "myocardium": (0.3, 0.37), "fat": (1.0, 1.35), "muscle": (0.25, 0.32),
                             "liver": (0.35, 0.45)},
                       noise=(0.03, 0.06), scale=(600, 1800), resolution=(0.6, 0.85), filter_taper=(0.3, 0.5),
                       bias=0.3, spacing=(1.4, 2.0)),
    "C": VendorProfile("C", {**_COMMON, "myocardium": (0.22, 0.28), "fat": (0.85, 1.05), "muscle": (0.2, 0.26),
                             "liver": (0.28, 0.35)},
                       noise=(0.02, 0.04), scale=(120, 260), resolution=(0.8, 1.0), filter_taper=(0.05, 0.15),
                       bias=0.25, spacing=(1.2, 1.5)),
    "D": VendorProfile("D", {**_COMMON, "myocardium": (0.18, 0.25), "fat": (0.8, 1.0), "muscle": (0.16, 0.22),
                             "liver": (0.25, 0.32)},
                       noise=(0.015, 0.03), scale=(400, 900), resolution=(0.7, 0.95), filter_taper=(0.15, 0.3),
                       bias=0.45, spacing=(1.3, 1.8)),
}


@dataclass(frozen=True)
class Acquisition:
    """One subject's scan settings."""
    vendor: str
    contrast: Dict[str, float]
    noise: float
    scale: float
    resolution: Tuple[float, float]     # acquired fraction of k-space along (y, x)
    filter_taper: float
    bias: np.ndarray                    # coefficients of x, y, x², y², xy, z in the log coil sensitivity
    breath_hold_shift: np.ndarray       # (slices, 2) in-plane scene offset (mm) of each slice's anatomy
    breath_hold_depth: np.ndarray       # (slices,) through-plane offset (mm)


def draw_acquisition(rng: np.random.Generator, vendor: VendorProfile, n_slices: int) -> Acquisition:
    """Draw one subject's contrast, noise, scale, resolution, coil bias and breath-hold mismatch."""
    contrast = {tissue: float(rng.uniform(*span)) for tissue, span in sorted(vendor.contrast.items())}
    resolution = (rng.uniform(*vendor.resolution), rng.uniform(*vendor.resolution))
    mismatch = rng.uniform(0.3, 2.0)
    return Acquisition(
        vendor=vendor.name, contrast=contrast, noise=rng.uniform(*vendor.noise), scale=rng.uniform(*vendor.scale),
        resolution=resolution, filter_taper=rng.uniform(*vendor.filter_taper),
        bias=rng.normal(0, vendor.bias, 6), breath_hold_shift=rng.normal(0, mismatch, (n_slices, 2)),
        breath_hold_depth=np.clip(rng.normal(0, 0.6 * mismatch, n_slices), -2.0, 2.0))


def coil_sensitivity(acquisition: Acquisition, rows: int, columns: int, relative_depth: float) -> np.ndarray:
    """Smooth multiplicative bias field (rows, columns) of one slice at relative depth 0 (base) to 1 (apex)."""
    y, x = np.meshgrid(np.linspace(-1, 1, rows, dtype=np.float32), np.linspace(-1, 1, columns, dtype=np.float32),
                       indexing="ij")
    c = acquisition.bias
    log_gain = c[0] * x + c[1] * y + c[2] * x * x + c[3] * y * y + c[4] * x * y + c[5] * (relative_depth - 0.5)
    return np.exp(log_gain).astype(np.float32)


def _k_space_window(rows: int, columns: int, resolution: Tuple[float, float], taper: float) -> np.ndarray:
    """Separable low-pass window over FFT frequencies: flat, then a cosine edge, zero beyond the acquired part."""
    window = np.ones((rows, columns), np.float32)
    for axis, (size, fraction) in enumerate(((rows, resolution[0]), (columns, resolution[1]))):
        radius = np.abs(np.fft.fftfreq(size)) * 2.0 / fraction    # 1 at the edge of acquired k-space
        edge = np.clip((radius - (1.0 - taper)) / max(taper, 1e-6), 0.0, 1.0)
        profile = np.where(radius <= 1.0, 0.5 * (1.0 + np.cos(np.pi * edge)), 0.0).astype(np.float32)
        window *= profile[:, None] if axis == 0 else profile[None, :]
    return window


def acquire(ideal: np.ndarray, acquisition: Acquisition, relative_depth: float,
            rng: np.random.Generator) -> np.ndarray:
    """Scanner image (int16) of one slice's frames (T, rows, columns) of ideal intensities (LV blood = 1)."""
    frames, rows, columns = ideal.shape
    window = _k_space_window(rows, columns, acquisition.resolution, acquisition.filter_taper)
    # Complex white noise is added in k-space, where the scanner measures, so after the low-pass window it is
    # correlated like in zero-filled reconstructions; its image-space level after the window is acquisition.noise.
    noise_k = acquisition.noise * np.sqrt(rows * columns) / max(float(np.sqrt(np.mean(window ** 2))), 1e-3)
    signal = ideal * coil_sensitivity(acquisition, rows, columns, relative_depth)
    k_space = scipy.fft.fft2(signal, workers=1)
    k_space += noise_k * (rng.standard_normal(ideal.shape, dtype=np.float32)
                          + 1j * rng.standard_normal(ideal.shape, dtype=np.float32))
    magnitude = np.abs(scipy.fft.ifft2(k_space * window, workers=1)) * acquisition.scale
    return np.clip(np.round(magnitude), 0, np.iinfo(np.int16).max).astype(np.int16)
