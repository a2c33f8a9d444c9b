"""One frame of an input image, preprocessed exactly as nnU-Net preprocesses the dataset's images, stored atomically.

A 3D file is read by nnU-Net's SimpleITKIO. A 4D cine is read once and each frame gets the properties SimpleITKIO
gives the same frame written as a 3D file: the spacing, origin and direction of the frame SimpleITK extracts.
Frames with NaN or infinite voxels (looked up with nibabel in NIfTI files, where SimpleITK reads them as 0) and
constant frames are refused. The plans' preprocessor (`run_case_npy`) then transposes, crops to non-zero, normalises and
resamples it, and nnU-Net's `nnUNetDatasetBlosc2.save_case` stores `<case>.b2nd`, `<case>_seg.b2nd` (the non-zero
mask nnU-Net stores for unlabeled images) and `<case>.pkl`, with blocks and chunks from `comp_blosc2_params` as in
`DefaultPreprocessor.run_case_save`. The three files are written in a temporary folder and renamed into the pool,
`<case>.b2nd` last: nnU-Net lists cases by their `.b2nd`, so a case it can see is complete.
"""

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, NamedTuple, Optional, Tuple, Union

import nibabel
import numpy as np
import SimpleITK as sitk
from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
from nnunetv2.training.dataloading.nnunet_dataset import comp_blosc2_params, nnUNetDatasetBlosc2

from nnunet_ssp.converters.images import itk_reason, read_header
from nnunet_ssp.errors import InputError
from nnunet_ssp.unlabeled.manifest import RECORD_KEY, ManifestRow, case_rows
from nnunet_ssp.unlabeled.plans import PoolPlans

TEMPORARY_SUFFIX = ".partial"
CASE_FILE_ENDINGS = (".pkl", "_seg.b2nd", ".b2nd")  # the order of renaming: nnU-Net sees a case by its .b2nd


@dataclass(frozen=True)
class FrameJob:
    """One frame to prepare: frame `index` of a cine (None for a 3D file), stored as `case`."""
    source: str
    subject: str
    frame: int
    index: Optional[int]
    case: str


@dataclass(frozen=True)
class FrameResult:
    """The manifest rows of a prepared frame, or the one-sentence problem that kept it out."""
    job: FrameJob
    rows: Tuple[ManifestRow, ...] = ()
    problem: Optional[str] = None
    whole_file: bool = False


class InputFrames(NamedTuple):
    """An input image's voxels (frames, z, y, x), SimpleITKIO's properties of a frame, which frames are finite."""
    voxels: np.ndarray
    properties: dict
    finite: np.ndarray


def read_frames(path: str, is_cine: bool) -> InputFrames:
    """An input image as nnU-Net's SimpleITKIO reads it (a cine frame by frame)."""
    header = read_header(Path(path))
    try:
        if is_cine:
            cine = sitk.ReadImage(path)
            frame = cine[:, :, :, 0]
            voxels = sitk.GetArrayFromImage(cine)
            properties = {"sitk_stuff": {"spacing": frame.GetSpacing(), "origin": frame.GetOrigin(),
                                         "direction": frame.GetDirection()},
                          "spacing": list(np.abs(frame.GetSpacing()[::-1]))}
        else:
            voxels, properties = SimpleITKIO().read_images([path])
    except RuntimeError as e:
        raise InputError(f"{path} cannot be read as an image ({itk_reason(e)}).") from None
    return InputFrames(voxels, properties, _finite_frames(path, header, voxels))


def _finite_frames(path: str, header: sitk.ImageFileReader, voxels: np.ndarray) -> np.ndarray:
    """Per frame, whether all its voxels are finite in the file."""
    if header.GetPixelID() not in (sitk.sitkFloat32, sitk.sitkFloat64):
        return np.ones(len(voxels), bool)
    if "vox_offset" in header.GetMetaDataKeys():  # NIfTI: SimpleITK reads NaN and infinity as 0, so ask nibabel
        stored = np.asanyarray(nibabel.load(path).dataobj)  # x, y, z[, t]
        return np.isfinite(stored.reshape(stored.shape[:3] + (-1,))).all(axis=(0, 1, 2))
    return np.isfinite(voxels).all(axis=(1, 2, 3))


def check_frame(frame: np.ndarray, finite: bool, where: str) -> None:
    """Refuse a frame with NaN or infinite voxels, or a constant one (it holds no image to normalise)."""
    if not finite:
        raise InputError(f"{where} has NaN or infinite voxels.")
    low, high = frame.min(), frame.max()
    if low == high:
        raise InputError(f"{where} is constant ({low:g} everywhere), so it holds no image.")


@dataclass(frozen=True)
class Frame:
    """The voxels (1, z, y, x) of a checked frame, with the SimpleITKIO properties of its input image."""
    job: FrameJob
    voxels: np.ndarray
    properties: dict


def frame_name(job: FrameJob) -> str:
    """'Frame t of <file>' for a cine frame, the file for a 3D image."""
    return job.source if job.index is None else f"Frame {job.index} of {job.source}"


class FrameReader:
    """Reads and checks the frames of jobs in file order, keeping the last input image read."""

    def __init__(self):
        self._cached: Tuple[Optional[str], object] = (None, None)

    def __call__(self, job: FrameJob) -> Union[Frame, FrameResult]:
        """The job's frame, or the result saying why it cannot be prepared."""
        if self._cached[0] != job.source:
            try:
                self._cached = (job.source, read_frames(job.source, job.index is not None))
            except InputError as e:
                self._cached = (job.source, e)
        source = self._cached[1]
        if isinstance(source, InputError):
            return FrameResult(job, problem=str(source), whole_file=True)
        index = job.index or 0
        voxels = source.voxels[index][None]
        try:
            check_frame(voxels, bool(source.finite[index]), frame_name(job))
        except InputError as e:
            return FrameResult(job, problem=str(e))
        return Frame(job, voxels, source.properties)


class FramePreprocessor:
    """Preprocesses frames with a dataset's plans and stores them in its pool."""

    def __init__(self, plans: PoolPlans, flip_base_apex: bool):
        self.folder = plans.folder
        self.plans_manager = plans.plans_manager
        self.configuration_manager = plans.configuration_manager
        self.dataset_json = plans.dataset_json
        self.preprocessor = self.configuration_manager.preprocessor_class(verbose=False)
        self.flip_base_apex = flip_base_apex

    def __call__(self, frame: Frame) -> FrameResult:
        """Preprocess and store `frame`; its manifest rows, or the problem nnU-Net had with it."""
        job = frame.job
        try:
            data, seg, properties = self.preprocessor.run_case_npy(frame.voxels, None, dict(frame.properties),
                                                                   self.plans_manager, self.configuration_manager,
                                                                   self.dataset_json)
        except Exception as e:  # an image nnU-Net cannot preprocess is reported, never half-stored
            return FrameResult(job, problem=f"{frame_name(job)} failed in nnU-Net's preprocessing "
                                            f"({type(e).__name__}: {e}).")
        properties["class_locations"] = {}
        properties[RECORD_KEY] = {"subject": job.subject, "frame": job.frame, "source": job.source}
        self._save(data, seg, properties, job.case)
        return FrameResult(job, rows=tuple(case_rows(self.folder, job.case, self.plans_manager.transpose_forward,
                                                     self.flip_base_apex)))

    def _save(self, data: np.ndarray, seg: np.ndarray, properties: dict, case: str) -> None:
        data = data.astype(np.float32, copy=False)
        seg = seg.astype(np.int16, copy=False)
        patch_size = tuple(self.configuration_manager.patch_size)
        blocks, chunks = comp_blosc2_params(data.shape, patch_size, data.itemsize)
        blocks_seg, chunks_seg = comp_blosc2_params(seg.shape, patch_size, seg.itemsize)
        temporary = Path(tempfile.mkdtemp(prefix=f".{case}.", suffix=TEMPORARY_SUFFIX, dir=self.folder))
        try:
            nnUNetDatasetBlosc2.save_case(data, seg, properties, str(temporary / case), chunks=chunks, blocks=blocks,
                                          chunks_seg=chunks_seg, blocks_seg=blocks_seg)
            for ending in CASE_FILE_ENDINGS:
                os.replace(temporary / f"{case}{ending}", self.folder / f"{case}{ending}")
        finally:
            shutil.rmtree(temporary, ignore_errors=True)


def case_is_complete(folder: Path, case: str) -> bool:
    """Whether all files of `case` are in `folder`."""
    return all((folder / f"{case}{ending}").is_file() for ending in CASE_FILE_ENDINGS)


def remove_partial_cases(folder: Path) -> List[Path]:
    """Delete the temporary folders an interrupted run left in the pool; return them."""
    leftovers = sorted(folder.glob(f".*{TEMPORARY_SUFFIX}"))
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    return leftovers
