"""Speed of pretraining against nnU-Net's own training step, measured side by side (`nnunet-ssp benchmark-speed`)."""

from nnunet_ssp.speed.benchmark import SSP_TRAINERS, SpeedSettings, benchmark_speed
from nnunet_ssp.speed.report import SpeedReport, TrainerResult

__all__ = ["SSP_TRAINERS", "SpeedReport", "SpeedSettings", "TrainerResult", "benchmark_speed"]
