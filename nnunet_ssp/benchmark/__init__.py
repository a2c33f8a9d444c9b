"""The label-efficiency benchmark: the grid of nnU-Net runs, its results.csv and its report."""

from nnunet_ssp.benchmark.grid import BenchmarkSettings, Run, plan_runs
from nnunet_ssp.benchmark.layout import Layout
from nnunet_ssp.benchmark.markers import finished_runs, is_finished, pending_runs
from nnunet_ssp.benchmark.report import report_from_csv
from nnunet_ssp.benchmark.runner import RunFailedError, run_benchmark

__all__ = ["BenchmarkSettings", "Layout", "Run", "plan_runs", "finished_runs", "is_finished", "pending_runs",
           "report_from_csv", "RunFailedError", "run_benchmark"]
