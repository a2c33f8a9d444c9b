"""Finding the input images of the unlabeled pool, naming their subjects and checking their headers.

Subject id: the file name without its image ending (`.nii.gz`, `.nii`, `.nrrd`, `.mha`, `.mhd`, `.gipl`) and
without a trailing `_4d`, `_sa` or `_SA_CINE` (ACDC `patient001_4d.nii.gz`, M&Ms `A0S9V9_sa.nii.gz` and M&Ms-2
`001_SA_CINE.nii.gz` give the names the converters use). A 3D file named `<subject>_frameYY` is frame YY - 1 of
`<subject>` (the converters' case naming); any other 3D file is frame 0 of the subject its name gives. With a subject
pattern (prepare-unlabeled's `--subject-pattern`, else the dataset's recorded one), the subject is the pattern's first
group searched in the file name without its ending, and the 3D files of one subject are its frames 0, 1, ... in the
order of their paths; a file the pattern names no subject in stops the run.

Kind of folder: 4D cines (x, y, z, t) or 3D frames (x, y, z), decided by the first file (sorted by path) whose
header reads, unless given; a file of the other kind is bad.
"""

import fnmatch
import math
import os
from dataclasses import dataclass
from pathlib import Path
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

import SimpleITK as sitk

from nnunet_ssp.converters.cases import CASE_MARKER
from nnunet_ssp.converters.images import read_header
from nnunet_ssp.errors import InputError
from nnunet_ssp.slices import subject_and_frame_of_case
from nnunet_ssp.subjects import SubjectRule

DEFAULT_PATTERNS = ("*_4d.nii.gz", "*_sa.nii.gz", "*_SA_CINE.nii.gz")
IMAGE_ENDINGS = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".gipl")
CINE_SUFFIXES = ("_4d", "_sa", "_SA_CINE")
KINDS = {"4d": 4, "3d": 3}
_KIND_TEXT = {4: "4D cines (x, y, z, t)", 3: "3D frames (x, y, z)"}


@dataclass(frozen=True)
class Source:
    """One input image: its subject, and the frame number of its first frame and how many frames it holds."""
    path: Path
    subject: str
    first_frame: int
    num_frames: int
    is_cine: bool


@dataclass(frozen=True)
class BadInput:
    """A file (or one frame of it) left out of the pool, and why, in one sentence naming the file."""
    file: str
    problem: str
    frame: Optional[int] = None


def find_images(input_dir: Path, patterns: Sequence[str] = DEFAULT_PATTERNS) -> List[Path]:
    """Files below `input_dir` (recursively, hidden ones skipped) whose names match any of `patterns`, sorted."""
    if not input_dir.is_dir():
        raise InputError(f"{input_dir} is not a folder.")
    found = []
    for root, folders, files in os.walk(input_dir):
        folders[:] = [f for f in folders if not f.startswith(".")]
        found += [Path(root) / f for f in files
                  if not f.startswith(".") and any(fnmatch.fnmatch(f, p) for p in patterns)]
    if not found:
        raise InputError(f"{input_dir} holds no files matching {' or '.join(patterns)} (use --pattern for other "
                         f"names).")
    return sorted(found)


def file_stem(path: Path) -> str:
    """The file name without its image ending."""
    ending = next((e for e in IMAGE_ENDINGS if path.name.endswith(e)), "")
    return path.name[:len(path.name) - len(ending)]


def named_frames(files: Sequence[Path], is_cine: bool, rule: Optional[SubjectRule]) -> Dict[Path, Tuple[str, int]]:
    """Subject and first frame of each file (see the module docstring); InputError when `rule` misses a file."""
    if rule is None:
        return {path: subject_and_frame(path, is_cine) for path in files}
    named, counts = {}, Counter()
    for path in sorted(files):
        try:
            subject = rule.subject_of(file_stem(path))
        except ValueError:
            matched = sum(rule.names_subject(file_stem(p)) for p in files)
            raise InputError(f"{path}: {rule.describe()} names no subject in this file name ({matched} of the "
                             f"{len(files)} input files match); pass --subject-pattern for the pool's file "
                             f"names.") from None
        named[path] = (subject, 0 if is_cine else counts[subject])
        counts[subject] += 1
    return named


def subject_and_frame(path: Path, is_cine: bool) -> Tuple[str, int]:
    """The subject id of an image file and the frame number of its first frame (see the module docstring)."""
    stem = file_stem(path)
    if is_cine:
        suffix = next((s for s in CINE_SUFFIXES if stem.endswith(s) and len(stem) > len(s)), "")
        return stem[:len(stem) - len(suffix)], 0
    subject, frame = subject_and_frame_of_case(stem)
    if frame < 0 or not stem[len(subject) + len(CASE_MARKER):].isdigit():
        return stem, 0
    return subject, frame


def folder_dimension(files: Sequence[Path], kind: str) -> Tuple[int, str]:
    """The folder's dimension (4 cines, 3 frames) and what decided it: `kind`, or else the first readable file."""
    if kind in KINDS:
        return KINDS[kind], f"--kind {kind}"
    for path in files:
        try:
            dimension = read_header(path).GetDimension()
        except InputError:
            continue
        if dimension in KINDS.values():
            return dimension, str(path)
    raise InputError(f"None of the {len(files)} matching files reads as a 3D or 4D image (the first is "
                     f"{files[0]}).")


def check_header(path: Path, reader: sitk.ImageFileReader, dimension: int, decided_by: str,
                 slice_axis: int) -> None:
    """Refuse what the plans cannot absorb (dimensionality, channels, slice axis) and truncated files."""
    if reader.GetDimension() != dimension:
        raise InputError(f"{path} is {reader.GetDimension()}D, but this folder holds {_KIND_TEXT[dimension]} "
                         f"(decided by {decided_by}).")
    if reader.GetNumberOfComponents() != 1:
        raise InputError(f"{path} has {reader.GetNumberOfComponents()} components per voxel, but the plans take "
                         f"one channel.")
    # `slice_axis`, the numpy axis nnU-Net's transpose puts first and the 2d configuration slices along, is the
    # coarsest axis of the dataset's images; in-plane spacing and direction are absorbed (resampling, geometry).
    spacing_zyx = list(reader.GetSpacing()[:3])[::-1]
    coarsest = max(range(3), key=lambda axis: spacing_zyx[axis])
    if spacing_zyx[slice_axis] < spacing_zyx[coarsest]:
        raise InputError(f"{path} has its coarsest spacing ({spacing_zyx[coarsest]:g} mm) along array axis "
                         f"{coarsest} (z, y, x order), but the plans cut 2D slices along axis {slice_axis}, so its "
                         f"slices would not be short-axis slices like the dataset's.")
    check_complete(path, reader)


def check_complete(path: Path, reader: sitk.ImageFileReader) -> None:
    """Refuse a NIfTI file holding fewer bytes than its header promises (SimpleITK would read zeros instead)."""
    if not {"vox_offset", "bitpix", "dim[0]"} <= set(reader.GetMetaDataKeys()):
        return
    dims = [int(reader.GetMetaData(f"dim[{i}]")) for i in range(1, int(reader.GetMetaData("dim[0]")) + 1)]
    expected = int(float(reader.GetMetaData("vox_offset"))) + math.prod(dims) * int(reader.GetMetaData("bitpix")) // 8
    with open(path, "rb") as f:
        if f.read(2) == b"\x1f\x8b":  # gzip: the last four bytes hold the uncompressed size modulo 2**32
            f.seek(-4, os.SEEK_END)
            complete = int.from_bytes(f.read(4), "little") == expected % 2 ** 32
        else:
            complete = os.path.getsize(path) >= expected
    if not complete:
        raise InputError(f"{path} holds fewer bytes than its header promises (truncated or damaged).")


def scan_sources(files: Sequence[Path], dimension: int, decided_by: str, slice_axis: int,
                 rule: Optional[SubjectRule] = None) -> Tuple[List[Source], List[BadInput]]:
    """The usable sources among `files` (headers checked, subjects named by `rule` or the file-name rule, subject ids
    unique per frame) and the bad files."""
    sources, bad, owner = [], [], {}
    names = named_frames(files, dimension == 4, rule)
    for path in files:
        try:
            source = _source(path, read_header(path), dimension, decided_by, slice_axis, names[path])
        except InputError as e:
            bad.append(BadInput(str(path), str(e)))
            continue
        frames = range(source.first_frame, source.first_frame + source.num_frames)
        clash = next((f for f in frames if (source.subject, f) in owner), None)
        if clash is not None:
            bad.append(BadInput(str(path), f"{path} gives frame {clash} of subject {source.subject}, as "
                                           f"{owner[source.subject, clash]} does."))
            continue
        owner.update({(source.subject, f): path for f in frames})
        sources.append(source)
    return sources, bad


def _source(path: Path, reader: sitk.ImageFileReader, dimension: int, decided_by: str, slice_axis: int,
            name: Tuple[str, int]) -> Source:
    check_header(path, reader, dimension, decided_by, slice_axis)
    is_cine = dimension == 4
    return Source(path, name[0], name[1], reader.GetSize()[3] if is_cine else 1, is_cine)
