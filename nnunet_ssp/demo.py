"""The built-in demo: the whole label-efficiency question on the synthetic phantom, in a few minutes on a CPU.

Phantom cines -> nnU-Net raw dataset -> CPU-sized plans and preprocessing -> unlabeled pool of every frame ->
MIM pretraining -> fine-tuning on few labeled subjects and nnU-Net's baseline on the same schedule -> prediction
and 3D Dice on held-out subjects -> table, plot and a figure of predictions against the ground truth.
Everything lives below one folder, with its own nnU-Net data roots, so the user's own are never touched.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

from nnunet_ssp.benchmark import BenchmarkSettings, run_benchmark
from nnunet_ssp.benchmark.grid import BASELINE, PRETRAIN, plan_runs
from nnunet_ssp.benchmark.layout import Layout
from nnunet_ssp.converters import case_id, convert_acdc
from nnunet_ssp.converters.acdc import INFO_FILE
from nnunet_ssp.converters.common import CINES_FILE, FILE_ENDING, TEST
from nnunet_ssp.cpu_plans import CPU_PLANS_NAME, plan_and_preprocess_cpu
from nnunet_ssp.defaults import DEMO_EPOCHS, DEMO_ITERS
from nnunet_ssp.errors import InputError
from nnunet_ssp.phantom import generate_phantom
from nnunet_ssp.phantom.acdc_layout import patient_name
from nnunet_ssp.roots import raw_dataset_folder
from nnunet_ssp.splits import check_preprocessed
from nnunet_ssp.unlabeled import prepare_unlabeled

DEMO_DATASET_ID = 990
DEMO_DATASET_NAME = "SSPDemo"


@dataclass(frozen=True)
class DemoSettings:
    """The demo's size: phantom subjects, image size, schedule and labeled-subject counts."""
    subjects: int = 14
    test_subjects: int = 4
    image_size: Optional[int] = 64  # None: each subject at its scanner's matrix (110-220 pixels)
    spacing: Optional[float] = None  # in-plane mm; None: from the field of view
    labeled: Tuple[int, ...] = (2,)
    pretrain_epochs: int = DEMO_EPOCHS
    finetune_epochs: int = DEMO_EPOCHS
    iters: int = DEMO_ITERS
    seed: int = 0
    num_processes: int = 2


def demo_environment(out: Path) -> dict:
    """nnU-Net's data roots below `out`, set in this process (and so in every subprocess)."""
    roots = {name: str(out / name) for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    for path in roots.values():
        Path(path).mkdir(parents=True, exist_ok=True)
    os.environ.update(roots)
    os.environ.setdefault("nnUNet_def_n_proc", "2")
    os.environ.setdefault("nnUNet_n_proc_DA", "2")
    return roots


def plan_and_preprocess(dataset_id: int, plans: str, num_processes: int) -> None:
    """The 2d configuration planned and preprocessed: CPU-sized under `CPU_PLANS_NAME`, else by nnU-Net's default
    planner (full-sized network, batch for its GPU memory target) under the name `plans`."""
    if plans == CPU_PLANS_NAME:
        plan_and_preprocess_cpu(dataset_id, num_processes=num_processes)
        return
    from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprints, plan_experiments, preprocess

    extract_fingerprints([dataset_id], num_processes=num_processes, check_dataset_integrity=True)
    plan_experiments([dataset_id], overwrite_plans_name=plans)
    preprocess([dataset_id], plans, ["2d"], [num_processes])


def prepare_demo_dataset(out: Path, settings: DemoSettings, plans: str = CPU_PLANS_NAME) -> str:
    """Phantom, conversion, plans and preprocessing, and the unlabeled pool; each step is skipped when it finished."""
    cines = out / "cines"
    raw = raw_dataset_folder(f"Dataset{DEMO_DATASET_ID:03d}_{DEMO_DATASET_NAME}")
    if not (cines / patient_name(settings.subjects, settings.subjects) / INFO_FILE).is_file():
        print(f"1/4 Generating {settings.subjects} phantom subjects in {cines}")
        generate_phantom(cines, settings.subjects, settings.seed, image_size=settings.image_size,
                         spacing=settings.spacing, num_processes=settings.num_processes)
    if not (raw / "dataset.json").is_file():
        print(f"2/4 Converting them into {raw}")
        convert_acdc(cines, DEMO_DATASET_ID, name=DEMO_DATASET_NAME, test_subjects=settings.test_subjects)
    try:
        check_preprocessed(raw.name, plans)
    except InputError:  # never planned, or the preprocessing was interrupted
        print(f"3/4 Planning ({'CPU-sized' if plans == CPU_PLANS_NAME else 'nnU-Net-sized'} network) and "
              f"preprocessing")
        plan_and_preprocess(DEMO_DATASET_ID, plans, settings.num_processes)
    print("4/4 Preprocessing every frame of the training cines into the unlabeled pool")
    prepare_unlabeled(DEMO_DATASET_ID, cines, plans_name=plans, num_processes=settings.num_processes)
    return raw.name


def prediction_figure(layout: Layout, settings: BenchmarkSettings, folds: dict, raw: Path, out_png: Path) -> Path:
    """The slice with most labels of the ED frame of up to four test subjects: image, ground truth, baseline and
    pretrained fine-tuned."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import SimpleITK as sitk

    from nnunet_ssp.atomic import atomic_path

    runs = [r for r in plan_runs(settings, folds) if r.kind != PRETRAIN and r.labeled_subjects == settings.subjects[0]]
    runs.sort(key=lambda r: r.label != BASELINE)
    cines = json.loads((raw / CINES_FILE).read_text())
    ed_cases = [case_id(subject, entry["ED"]) for subject, entry in sorted(cines.items()) if entry["split"] == TEST]
    cases = [c for c in ed_cases if (raw / "labelsTs" / f"{c}{FILE_ENDING}").is_file()][:4]  # up to four subjects
    fig, axes = plt.subplots(len(cases), 2 + len(runs), figsize=(2.4 * (2 + len(runs)), 2.4 * len(cases)),
                             squeeze=False)
    for row, case in enumerate(cases):
        label = sitk.GetArrayFromImage(sitk.ReadImage(str(raw / "labelsTs" / f"{case}{FILE_ENDING}")))
        image = sitk.GetArrayFromImage(sitk.ReadImage(str(raw / "imagesTs" / f"{case}_0000{FILE_ENDING}")))
        z = int(np.argmax((label > 0).sum(axis=(1, 2))))
        panels = [("image", None), ("ground truth", label)]
        panels += [(f"{r.label} ({r.labeled_subjects} subj.)",
                    sitk.GetArrayFromImage(sitk.ReadImage(str(layout.predictions(r) / f"{case}{FILE_ENDING}"))))
                   for r in runs]
        for col, (title, seg) in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(image[z], cmap="gray")
            if seg is not None:
                ax.imshow(np.ma.masked_equal(seg[z], 0), cmap="jet", alpha=0.45, vmin=0, vmax=3,
                          interpolation="nearest")
            ax.set_axis_off()
            if row == 0:
                ax.set_title(title, fontsize=9)
        axes[row, 0].text(2, 8, case, color="yellow", fontsize=7)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
    return out_png


def run_demo(out: Path, settings: DemoSettings = DemoSettings()) -> Path:
    """Run the demo below `out` (resumable: finished steps are skipped); returns the benchmark folder."""
    out = Path(out).resolve()
    demo_environment(out)
    dataset_name = prepare_demo_dataset(out, settings)
    benchmark = BenchmarkSettings(dataset=dataset_name, methods=("mim",), subjects=tuple(settings.labeled),
                                  seeds=(settings.seed,), pretrain_epochs=settings.pretrain_epochs,
                                  finetune_epochs=settings.finetune_epochs, iters=settings.iters,
                                  plans=CPU_PLANS_NAME, out=out / "benchmark", device="cpu")
    result = run_benchmark(benchmark)
    figure = prediction_figure(Layout(result.out, dataset_name, CPU_PLANS_NAME), benchmark, result.folds,
                               raw_dataset_folder(dataset_name), result.out / "predictions.png")
    print(result.report.report_file.read_text().split("\n## ", 2)[1].split("\n", 1)[1])
    print(result.summary())
    print(f"  figure:  {figure}")
    return result.out

