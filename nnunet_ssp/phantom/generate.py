"""Generate a synthetic short-axis cine dataset in the ACDC (or M&Ms-2) layout, in parallel and reproducibly."""

import multiprocessing
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import List, Optional, Union

from tqdm import tqdm

from nnunet_ssp.errors import InputError
from nnunet_ssp.phantom import acdc_layout, mnms2_layout
from nnunet_ssp.phantom.cine import render_cine
from nnunet_ssp.phantom.subject import draw_subject

MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 16, 1024
MIN_SPACING, MAX_SPACING = 0.5, 10.0   # mm
# layout -> (folder name of subject i of n, writer of one subject)
LAYOUTS = {"acdc": (acdc_layout.patient_name, acdc_layout.write_subject),
           "mnms2": (mnms2_layout.subject_code, mnms2_layout.write_subject)}


@dataclass(frozen=True)
class SubjectSummary:
    """What was written for one subject."""
    name: str
    group: str
    vendor: str
    frames: int
    slices: int
    rows: int
    columns: int
    pixel_mm: float
    slice_mm: float


def _make_subject(index: int, out_dir: Path, n_subjects: int, seed: int, image_size: Optional[int],
                  spacing: Optional[float], layout: str) -> SubjectSummary:
    """Draw, render and write subject `index` (1-based)."""
    plan = draw_subject(seed, index, image_size, spacing)
    subject_name, write_subject = LAYOUTS[layout]
    name = subject_name(index, n_subjects)
    write_subject(render_cine(plan), out_dir, name)
    scan = plan.scan
    return SubjectSummary(name=name, group=plan.group, vendor=plan.acquisition.vendor, frames=plan.motion.n_frames,
                          slices=scan.slices.count, rows=scan.rows, columns=scan.columns, pixel_mm=scan.pixel_mm,
                          slice_mm=scan.slices.spacing)


def _check_arguments(out_dir: Path, n_subjects: int, image_size: Optional[int], spacing: Optional[float],
                     num_processes: int, layout: str) -> None:
    """Stop with one clear sentence on bad input."""
    if layout not in LAYOUTS:
        raise InputError(f"The layout must be one of {', '.join(LAYOUTS)}, not {layout!r}.")
    if n_subjects < 1:
        raise InputError(f"The number of subjects must be at least 1, got {n_subjects}.")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"The output path {out_dir} is an existing file, not a folder.")
    if image_size is not None and not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
        raise InputError(f"The image size must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} pixels, "
                         f"got {image_size}.")
    if spacing is not None and not MIN_SPACING <= spacing <= MAX_SPACING:
        raise InputError(f"The pixel spacing must be between {MIN_SPACING} and {MAX_SPACING} mm, got {spacing} mm.")
    if num_processes < 1:
        raise InputError(f"The number of processes must be at least 1, got {num_processes}.")


def generate_phantom(out_dir: Union[str, Path], n_subjects: int, seed: int = 0, image_size: Optional[int] = None,
                     spacing: Optional[float] = None, num_processes: int = 1, progress: bool = True,
                     layout: str = "acdc") -> List[SubjectSummary]:
    """Write `n_subjects` synthetic cine subjects (patient001, ...) in the ACDC layout into `out_dir`.

    `layout="mnms2"` writes them in the M&Ms-2 layout instead (001, ..., and dataset_information.csv).

    The same seed gives byte-identical files whatever `num_processes`; subject i is the same in every dataset made
    with that seed, so a smaller dataset is a prefix of a larger one. `image_size` (pixels, square) and `spacing`
    (mm) fix the grid; by default each subject gets a field of view of 200-280 mm at its scanner's pixel size
    (1.2-2.0 mm), a matrix of 110-220 pixels."""
    out_dir = Path(out_dir)
    _check_arguments(out_dir, n_subjects, image_size, spacing, num_processes, layout)
    out_dir.mkdir(parents=True, exist_ok=True)
    make = partial(_make_subject, out_dir=out_dir, n_subjects=n_subjects, seed=seed, image_size=image_size,
                   spacing=spacing, layout=layout)
    indices = range(1, n_subjects + 1)
    bar = partial(tqdm, total=n_subjects, desc="synth", unit="subject", disable=not progress)
    if num_processes == 1:
        summaries = list(bar(map(make, indices)))
    else:
        with multiprocessing.get_context("spawn").Pool(min(num_processes, n_subjects)) as pool:
            summaries = list(bar(pool.imap(make, indices)))
    if layout == "mnms2":
        mnms2_layout.write_information_csv(out_dir, [s.name for s in summaries], [s.group for s in summaries],
                                           [s.vendor for s in summaries])
    return summaries
