"""Where the short-axis stack lies: slice planning along the LV axis and the NIfTI geometry (LPS, SimpleITK)."""

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

SLICE_SPACING_RANGE = (6.0, 10.0)
SLICE_COUNT_RANGE = (6, 14)
FIELD_OF_VIEW_RANGE = (200.0, 280.0)   # mm across the image (readout direction)
DEFAULT_MATRIX_RANGE = (110, 220)
# The heart's long axis points from base to apex: to the patient's left, anterior and inferior (LPS: +x, -y, -z).
APEX_DIRECTION = np.array([1.0, -1.0, -1.0]) / math.sqrt(3.0)


@dataclass(frozen=True)
class SlicePlan:
    """Slice positions along the LV axis: depth of the first slice below the base plane, spacing, count."""
    first_depth: float
    spacing: float
    count: int
    thickness: float

    @property
    def last_depth(self) -> float:
        """Depth of the most apical slice."""
        return self.first_depth + (self.count - 1) * self.spacing


@dataclass(frozen=True)
class ScanGeometry:
    """Image grid in the scene plane and in patient space (LPS)."""
    columns: int                    # nx
    rows: int                       # ny
    pixel_mm: float
    slices: SlicePlan
    rotation: float                 # in-plane angle (radians) of the image axes against the scene axes
    centre: Tuple[float, float]     # scene coordinates (l, a) of the image centre
    direction: np.ndarray           # 3x3, columns: image x axis, image y axis, slice normal (towards the apex)
    origin: np.ndarray              # LPS position of voxel (0, 0, 0)

    @property
    def spacing(self) -> Tuple[float, float, float]:
        """Voxel spacing (x, y, z) in mm."""
        return (self.pixel_mm, self.pixel_mm, self.slices.spacing)


def plan_slices(rng: np.random.Generator, lv_length: float) -> SlicePlan:
    """Cover the LV from just below the base to near the apex with 6 to 14 slices 6 to 10 mm apart."""
    spacing = rng.uniform(6.5, 10.0)
    thickness = rng.uniform(5.0, 8.0)
    # Most of the first slice's thickness lies below the base plane at ED, so it cuts the LV ring.
    first = 0.5 * thickness + rng.uniform(0.5, 4.0)
    last = lv_length - rng.uniform(0.25, 0.9) * spacing
    count = int(np.clip(round((last - first) / spacing) + 1, *SLICE_COUNT_RANGE))
    spacing = float(np.clip((last - first) / (count - 1), *SLICE_SPACING_RANGE))
    return SlicePlan(first_depth=first, spacing=spacing, count=count, thickness=min(thickness, spacing))


def _long_axis_frame(rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors (LPS) of the LV long axis (towards the apex) and the in-plane left and anterior directions."""
    normal = APEX_DIRECTION + rng.normal(0, 0.15, 3)
    normal /= np.linalg.norm(normal)
    anterior = np.array([0.0, -1.0, 0.0])
    anterior = anterior - anterior.dot(normal) * normal
    anterior /= np.linalg.norm(anterior)
    left = np.cross(normal, anterior)
    if left[0] < 0:
        left = -left
    return normal, left, anterior


def draw_scan_geometry(rng: np.random.Generator, slices: SlicePlan, view_centre: Tuple[float, float],
                       image_size: Optional[int], spacing: Optional[float],
                       default_spacing: Tuple[float, float]) -> ScanGeometry:
    """Draw matrix, pixel size, in-plane rotation and patient-space pose of a stack centred near `view_centre`.

    `image_size` and `spacing` fix the matrix and the pixel size when given; otherwise the field of view is drawn
    from FIELD_OF_VIEW_RANGE and the pixel size from `default_spacing` (the vendor's range)."""
    field_of_view = rng.uniform(*FIELD_OF_VIEW_RANGE)
    phase_ratio = rng.uniform(0.8, 1.0)
    if spacing is None:
        spacing = field_of_view / image_size if image_size else rng.uniform(*default_spacing)
    if image_size:
        columns = rows = int(image_size)
    else:
        columns = int(np.clip(round(field_of_view / spacing), *DEFAULT_MATRIX_RANGE))
        rows = int(np.clip(round(columns * phase_ratio), *DEFAULT_MATRIX_RANGE))
    rotation = math.radians(rng.uniform(-30, 30))
    centre = (view_centre[0] + rng.normal(0, 10), view_centre[1] + rng.normal(0, 10))

    normal, left, anterior = _long_axis_frame(rng)
    x_axis = math.cos(rotation) * left + math.sin(rotation) * anterior
    y_axis = math.sin(rotation) * left - math.cos(rotation) * anterior
    base_centre = np.array([rng.normal(20, 10), rng.normal(-10, 10), rng.normal(-20, 15)])
    origin = (base_centre + slices.first_depth * normal + centre[0] * left + centre[1] * anterior
              - 0.5 * (columns - 1) * spacing * x_axis - 0.5 * (rows - 1) * spacing * y_axis)
    return ScanGeometry(columns=columns, rows=rows, pixel_mm=float(spacing), slices=slices, rotation=rotation,
                        centre=centre, direction=np.stack([x_axis, y_axis, normal], axis=1), origin=origin)


def scene_grid(scan: ScanGeometry) -> Tuple[np.ndarray, np.ndarray]:
    """Scene coordinates (l, a), each (rows, columns), of the pixel centres of every slice."""
    u = (np.arange(scan.columns, dtype=np.float32) - 0.5 * (scan.columns - 1)) * scan.pixel_mm
    v = (np.arange(scan.rows, dtype=np.float32) - 0.5 * (scan.rows - 1)) * scan.pixel_mm
    u, v = np.meshgrid(u, v)
    c, s = math.cos(scan.rotation), math.sin(scan.rotation)
    return (scan.centre[0] + u * c + v * s).astype(np.float32), (scan.centre[1] + u * s - v * c).astype(np.float32)
