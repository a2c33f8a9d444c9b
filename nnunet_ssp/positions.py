"""Normalised base-to-apex slice positions, ordered from the image geometry.

The apex of the heart points left, anterior and inferior, which is (+1, -1, -1) in the LPS world coordinates
SimpleITK uses. A stack whose slice axis points along that direction runs base to apex with increasing index;
otherwise it runs apex to base and the positions are reversed. `flip` reverses a dataset whose geometry says the
opposite of its anatomy.
"""

from typing import Optional, Sequence

import numpy as np

APEX_DIRECTION_LPS = np.array([1.0, -1.0, -1.0]) / np.sqrt(3.0)


def slice_axis_direction(properties: dict, transpose_forward: Sequence[int]) -> Optional[np.ndarray]:
    """World direction of the preprocessed array's first spatial axis, or None without SimpleITK geometry."""
    sitk_stuff = properties.get("sitk_stuff")
    if not sitk_stuff or "direction" not in sitk_stuff:
        return None
    direction = np.asarray(sitk_stuff["direction"], dtype=float)
    ndim = int(round(np.sqrt(direction.size)))
    # numpy axis k of a SimpleITK array is ITK axis ndim - 1 - k; ITK axis c is column c of the direction matrix
    itk_axis = ndim - 1 - int(transpose_forward[0])
    return direction.reshape(ndim, ndim)[:, itk_axis][:3]


def runs_base_to_apex(axis_direction: Optional[np.ndarray], flip: bool = False) -> bool:
    """Whether increasing slice index moves towards the apex (True when the geometry is unknown), then `flip`."""
    toward_apex = axis_direction is None or float(np.dot(axis_direction, APEX_DIRECTION_LPS)) >= 0
    return toward_apex != flip


def normalised_positions(num_slices: int, base_to_apex: bool) -> np.ndarray:
    """Position of each slice centre, (i + 0.5) / N from base (0) to apex (1), in array order."""
    return positions_at(np.arange(num_slices), num_slices, base_to_apex)


def positions_at(indices: np.ndarray, num_slices: int, base_to_apex: bool) -> np.ndarray:
    """Positions (i + 0.5) / N from base (0) to apex (1) of (possibly fractional) slice indices i of an N-slice stack."""
    positions = (np.asarray(indices, dtype=float) + 0.5) / num_slices
    return positions if base_to_apex else 1.0 - positions
