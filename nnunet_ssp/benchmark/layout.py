"""Where a benchmark keeps its files below its output folder, and where nnU-Net writes each run's model.

nnU-Net names its output folder after trainer, plans and fold only, so the fine-tuning runs of different methods
would share one folder. Each method (and the baseline) therefore gets its own nnU-Net results root,
`<out>/models/<method>[.<pretraining variant>]`, passed to the subprocesses as `nnUNet_results`.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

from nnunetv2.utilities.file_path_utilities import convert_trainer_plans_config_to_identifier

from nnunet_ssp.benchmark.grid import CONFIGURATIONS, FINETUNE, PRETRAIN, Run

FINAL_CHECKPOINT = "checkpoint_final.pth"
CHECKPOINTS = (FINAL_CHECKPOINT, "checkpoint_latest.pth", "checkpoint_best.pth")  # what nnUNetv2_train --c reads


@dataclass(frozen=True)
class Layout:
    """Where a benchmark keeps its files, below `out`."""
    out: Path
    dataset_name: str
    plans: str
    configuration: str = CONFIGURATIONS[0]

    def results_root(self, run: Run) -> Path:
        """The nnU-Net results root of a run's subprocesses: one per pretraining (shared by the fine-tunings that
        start from it), and one for the baseline."""
        owner = run.pretraining if run.kind == FINETUNE else run
        return self.out / "models" / owner.label

    def model_folder(self, run: Run) -> Path:
        """nnU-Net's output folder of a run (fold_X below the results root)."""
        return (self.results_root(run) / self.dataset_name /
                convert_trainer_plans_config_to_identifier(run.trainer, self.plans, self.configuration) / f"fold_{run.fold}")

    def checkpoint(self, run: Run) -> Path:
        """The final checkpoint nnU-Net writes for a run."""
        return self.model_folder(run) / FINAL_CHECKPOINT

    def checkpoints(self, run: Run) -> List[Path]:
        """Every checkpoint of a run that `nnUNetv2_train --c` can continue from."""
        return [self.model_folder(run) / name for name in CHECKPOINTS]

    def run_folder(self, run: Run) -> Path:
        """The run's own folder: step logs, predictions, evaluation summary, finished marker."""
        return self.out / "runs" / run.name

    def predictions(self, run: Run) -> Path:
        return self.run_folder(run) / "predictions"

    def summary(self, run: Run) -> Path:
        """nnU-Net's evaluation summary of the test predictions."""
        return self.run_folder(run) / "summary.json"

    def marker(self, run: Run) -> Path:
        """The file whose presence (with matching content) marks the run finished."""
        return self.run_folder(run) / "done.json"

    def train_record(self, run: Run) -> Path:
        """The file that says the run's training started, or finished, while the run is not finished."""
        return self.run_folder(run) / "train.json"

    def log(self, run: Run, step: str) -> Path:
        return self.run_folder(run) / f"{step}.log"

    def outputs(self, run: Run) -> Dict[str, Path]:
        """The files a finished run has left."""
        files = {"checkpoint": self.checkpoint(run)}
        if run.kind != PRETRAIN:
            files["summary"] = self.summary(run)
        return files
