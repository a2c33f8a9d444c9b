"""Speed of pretraining against nnU-Net's own training step, measured side by side (`nnunet-ssp benchmark-speed`)."""

from nnunet_ssp.speed.side_by_side import SpeedSettings, benchmark_speed, timed_trainers
from nnunet_ssp.speed.report import SpeedReport, TrainerResult

__all__ = ["SpeedReport", "SpeedSettings", "TrainerResult", "benchmark_speed", "timed_trainers"]
