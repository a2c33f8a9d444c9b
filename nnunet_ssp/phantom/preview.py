"""A picture to judge a cine dataset in the ACDC layout at a glance: base, mid and apex through the cycle."""

from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np
import SimpleITK as sitk

from nnunet_ssp.atomic import atomic_path
from nnunet_ssp.converters.acdc import INFO_FILE, read_info_cfg
from nnunet_ssp.converters.cases import case_id
from nnunet_ssp.converters.common import FILE_ENDING
from nnunet_ssp.errors import InputError

LABEL_COLOURS = {1: "#ffd400", 2: "#ff3b30", 3: "#30d5ff"}   # RV, myocardium, LV cavity
LABEL_NAMES = {1: "RV", 2: "MYO", 3: "LV"}


def _pick_subjects(folder: Path, max_subjects: int) -> List[Path]:
    """One subject per group first (in folder order), then more subjects until `max_subjects`."""
    subjects = sorted(p for p in folder.iterdir() if p.is_dir() and (p / INFO_FILE).is_file())
    if not subjects:
        raise InputError(f"The folder {folder} holds no subject folders with an Info.cfg.")
    chosen, groups = [], set()
    for subject in subjects:
        group = read_info_cfg(subject / INFO_FILE).get("Group")
        if group not in groups:
            groups.add(group)
            chosen.append(subject)
    chosen += [s for s in subjects if s not in chosen]
    return chosen[:max_subjects]


def _load(subject: Path) -> Tuple[dict, np.ndarray, dict, float]:
    """Info, cine (t, z, y, x), labels per 0-based frame, and pixel size of one subject folder."""
    info = read_info_cfg(subject / INFO_FILE)
    cine = sitk.ReadImage(str(subject / f"{subject.name}_4d{FILE_ENDING}"))
    labels = {}
    for key in ("ED", "ES"):
        frame = int(info[key]) - 1
        gt = subject / f"{case_id(subject.name, frame)}_gt{FILE_ENDING}"
        if gt.is_file():
            labels[frame] = sitk.GetArrayFromImage(sitk.ReadImage(str(gt)))
    return info, sitk.GetArrayFromImage(cine), labels, cine.GetSpacing()[0]


def preview_dataset(folder: Union[str, Path], out_png: Union[str, Path], max_subjects: int = 5,
                    title: Optional[str] = None) -> Path:
    """Draw base, mid and apex slices at ED, mid-systole and ES of a few subjects, with label contours."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    folder, out_png = Path(folder), Path(out_png)
    if not folder.is_dir():
        raise InputError(f"The dataset folder {folder} does not exist.")
    subjects = _pick_subjects(folder, max_subjects)
    columns = [(position, phase) for position in ("base", "mid", "apex") for phase in ("ED", "mid-sys", "ES")]
    fig, axes = plt.subplots(len(subjects), len(columns), figsize=(2.1 * len(columns), 2.25 * len(subjects)),
                             squeeze=False, facecolor="black")
    for row, subject in enumerate(subjects):
        info, cine, labels, pixel_mm = _load(subject)
        n_frames, n_slices = cine.shape[:2]
        ed, es = int(info["ED"]) - 1, int(info["ES"]) - 1
        frames = {"ED": ed, "mid-sys": (ed + ((es - ed) % n_frames) // 2) % n_frames, "ES": es}
        slices = {"base": 0, "mid": n_slices // 2, "apex": n_slices - 1}
        top = float(np.percentile(cine, 99.5))
        for col, (position, phase) in enumerate(columns):
            ax = axes[row, col]
            frame, z = frames[phase], slices[position]
            ax.imshow(cine[frame, z], cmap="gray", vmin=0, vmax=top, interpolation="nearest")
            if frame in labels:
                for value, colour in LABEL_COLOURS.items():
                    mask = labels[frame][z] == value
                    if mask.any():
                        ax.contour(mask, levels=[0.5], colors=colour, linewidths=0.7)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"{position} {phase}", color="white", fontsize=9)
            if col == 0:
                ax.set_ylabel(f"{subject.name}\n{info.get('Group', '?')}  {n_frames} fr  {n_slices} sl\n"
                              f"{pixel_mm:.2f} mm", color="white", fontsize=8)
    handles = [Line2D([0], [0], color=LABEL_COLOURS[value], label=name) for value, name in LABEL_NAMES.items()]
    fig.legend(handles=handles, loc="upper right", ncol=3, fontsize=8, frameon=False, labelcolor="white")
    fig.suptitle(f"{title or folder.name}: label contours at ED and ES", color="white", fontsize=9, x=0.3)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=80, facecolor="black")
    plt.close(fig)
    return out_png
