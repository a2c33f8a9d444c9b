"""The nnU-Net command of each step of a benchmark run: train, predict the test images, evaluate them."""

import sys
from pathlib import Path
from typing import List, Optional

from nnunet_ssp.benchmark.grid import Run
from nnunet_ssp.benchmark.layout import FINAL_CHECKPOINT, Layout


def nnunet_executable(name: str) -> str:
    """An nnU-Net console script: the one beside this Python if it is there, else the name for the PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else name


def train_command(run: Run, layout: Layout, device: str, pretrained: Optional[Path], resume: bool) -> List[str]:
    """`nnUNetv2_train` for a run: continuing its own checkpoint with `--c`, else from `pretrained` if given."""
    argv = [nnunet_executable("nnUNetv2_train"), layout.dataset_name, layout.configuration, str(run.fold),
            "-p", layout.plans, "-tr", run.trainer, "-device", device]
    if resume:
        return argv + ["--c"]
    return argv + (["-pretrained_weights", str(pretrained)] if pretrained is not None else [])


def predict_command(run: Run, layout: Layout, device: str, images: Path, processes: int) -> List[str]:
    """`nnUNetv2_predict` of the test images with the run's final checkpoint."""
    return [nnunet_executable("nnUNetv2_predict"), "-i", str(images), "-o", str(layout.predictions(run)),
            "-d", layout.dataset_name, "-c", layout.configuration, "-p", layout.plans, "-tr", run.trainer,
            "-f", str(run.fold), "-chk", FINAL_CHECKPOINT, "-device", device, "-npp", str(processes),
            "-nps", str(processes), "--disable_progress_bar"]


def evaluate_command(run: Run, layout: Layout, labels: Path, processes: int) -> List[str]:
    """`nnUNetv2_evaluate_folder` of the run's predictions against the test labels (3D Dice per structure)."""
    predictions = layout.predictions(run)
    return [nnunet_executable("nnUNetv2_evaluate_folder"), str(labels), str(predictions),
            "-djfile", str(predictions / "dataset.json"), "-pfile", str(predictions / "plans.json"),
            "-o", str(layout.summary(run)), "-np", str(processes)]
