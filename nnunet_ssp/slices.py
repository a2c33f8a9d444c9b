"""The table of 2D slices self-supervised pretraining samples from, with each slice's anatomical record."""

import os
from dataclasses import dataclass, field
from typing import Callable, List, Sequence, Tuple

import blosc2
import numpy as np
from batchgenerators.utilities.file_and_folder_operations import load_pickle

from nnunet_ssp.converters.cases import CASE_MARKER, subject_of_case
from nnunet_ssp.positions import positions_at, runs_base_to_apex, slice_axis_direction


def subject_and_frame_of_case(case: str) -> Tuple[str, int]:
    """Subject and 0-based frame of a case `<subject>_frameYY`; a case named otherwise is its own subject, frame -1."""
    try:
        subject = subject_of_case(case)
    except ValueError:
        return case, -1
    frame = case[len(subject) + len(CASE_MARKER):]
    return (subject, int(frame) - 1) if frame.isdigit() else (case, -1)


@dataclass
class SliceTable:
    """One row per 2D slice: where its data is and which subject, frame and base-to-apex position it has."""

    folders: List[str] = field(default_factory=list)
    folder_index: List[int] = field(default_factory=list)
    case: List[str] = field(default_factory=list)
    z: List[int] = field(default_factory=list)
    subject: List[str] = field(default_factory=list)
    frame: List[int] = field(default_factory=list)
    slice_index: List[int] = field(default_factory=list)
    num_slices: List[int] = field(default_factory=list)
    position: List[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.case)

    @property
    def identifiers(self) -> np.ndarray:
        """Row numbers; what the loader samples from, uniformly."""
        return np.arange(len(self))

    def data_file(self, row: int) -> str:
        """Path of the preprocessed array holding slice `row`."""
        return os.path.join(self.folders[self.folder_index[row]], self.case[row] + ".b2nd")

    def subjects(self) -> List[str]:
        """Distinct subjects, sorted."""
        return sorted(set(self.subject))

    def extend(self, other: "SliceTable") -> None:
        """Append the rows of `other`."""
        offset = len(self.folders)
        self.folders.extend(other.folders)
        self.folder_index.extend(i + offset for i in other.folder_index)
        for name in ("case", "z", "subject", "frame", "slice_index", "num_slices", "position"):
            getattr(self, name).extend(getattr(other, name))


def labeled_case_slices(folder: str, identifiers: Sequence[str], transpose_forward: Sequence[int],
                        flip_base_apex: bool = False,
                        subject_and_frame: Callable[[str], Tuple[str, int]] = subject_and_frame_of_case) -> SliceTable:
    """Slices of nnU-Net's preprocessed cases, positions measured on each case's original (uncropped, not resampled)
    stack; `subject_and_frame` names each case's subject and frame (the dataset's subject rule)."""
    table = SliceTable(folders=[folder])
    for case in sorted(identifiers):
        properties = load_pickle(os.path.join(folder, case + ".pkl"))
        stored_slices = blosc2.open(os.path.join(folder, case + ".b2nd"), mode="r").shape[1]
        original_slices = int(properties["shape_before_cropping"][0])
        toward_apex = runs_base_to_apex(slice_axis_direction(properties, transpose_forward), flip_base_apex)
        indices = original_slice_indices(properties["bbox_used_for_cropping"][0], stored_slices)
        positions = positions_at(indices, original_slices, toward_apex)
        subject, frame = subject_and_frame(case)
        for z in range(stored_slices):
            table.folder_index.append(0)
            table.case.append(case)
            table.z.append(z)
            table.subject.append(subject)
            table.frame.append(frame)
            table.slice_index.append(int(np.clip(np.round(indices[z]), 0, original_slices - 1)))
            table.num_slices.append(original_slices)
            table.position.append(float(positions[z]))
    return table


def original_slice_indices(crop: Sequence[int], stored_slices: int) -> np.ndarray:
    """Index in the original stack of each stored slice's centre, through nnU-Net's crop `crop` = (start, end) along
    the slice axis and its resampling (3d_fullres may resample that axis; 2d never does)."""
    start, end = int(crop[0]), int(crop[1])
    return start + (np.arange(stored_slices) + 0.5) * ((end - start) / stored_slices) - 0.5


class VolumeTable:
    """The volumes (frames) of a `SliceTable`, one row each, for 3D patches: drawn uniformly, positions per slice."""

    def __init__(self, slices: SliceTable):
        volumes: dict = {}
        for row in sorted(range(len(slices)), key=lambda r: slices.z[r]):
            volumes.setdefault((slices.folder_index[row], slices.case[row]), []).append(row)
        self.slices = slices
        self.rows: List[List[int]] = list(volumes.values())
        self.subject = [slices.subject[rows[0]] for rows in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def identifiers(self) -> np.ndarray:
        """Row numbers; what the loader samples from, uniformly."""
        return np.arange(len(self))

    def data_file(self, row: int) -> str:
        """Path of the preprocessed array of volume `row`."""
        return self.slices.data_file(self.rows[row][0])

    def position(self, row: int, z: int) -> float:
        """Base-to-apex position of stored slice `z` of volume `row` (the nearest stored slice when outside)."""
        rows = self.rows[row]
        return self.slices.position[rows[min(max(z, 0), len(rows) - 1)]]
