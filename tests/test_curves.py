"""Validation curves: read from a checkpoint as nnU-Net writes it, and the iterations a recipe needs to reach the
baseline's final value, also in the report."""

import re

import numpy as np
import pytest
import torch

from nnunet_ssp.benchmark import report_from_csv
from nnunet_ssp.benchmark.curves import (CurvePoint, catchup, curve_points, iterations_per_epoch, read_curves_csv,
                                         write_curves_csv)
from nnunet_ssp.benchmark.results import ResultRow, write_results_csv
from nnunet_ssp.errors import InputError


def _nnunet_checkpoint(path, ema):
    """A checkpoint with the log nnU-Net's trainer saves: numpy float32 values, one per epoch."""
    logging = {"mean_fg_dice": [np.float32(v) for v in ema], "ema_fg_dice": [np.float32(v) for v in ema],
               "lrs": [0.01] * len(ema)}
    torch.save({"network_weights": {"w": torch.zeros(2)}, "logging": logging, "current_epoch": len(ema)}, path)


def test_curve_points_come_from_nnunets_log_and_count_iterations(tmp_path):
    path = tmp_path / "checkpoint_final.pth"
    _nnunet_checkpoint(path, [0.1, 0.25, 0.5])
    points = curve_points(path, "nnUNetTrainerSSPFinetune_lr1e2_3epochs_40iters", "mim", 2, 1, 6)
    assert [(p.epoch, p.iterations) for p in points] == [(0, 40), (1, 80), (2, 120)]
    assert [p.ema_pseudo_dice for p in points] == pytest.approx([0.1, 0.25, 0.5])
    assert iterations_per_epoch("nnUNetTrainer_20epochs") == 250
    write_curves_csv(points, tmp_path / "curves.csv")
    assert read_curves_csv(tmp_path / "curves.csv") == points


def test_a_rewritten_checkpoint_is_read_again(tmp_path):
    import os

    from nnunet_ssp.benchmark.curves import validation_curve
    path = tmp_path / "checkpoint_final.pth"
    _nnunet_checkpoint(path, [0.1, 0.2])
    assert validation_curve(path) == pytest.approx([0.1, 0.2])
    _nnunet_checkpoint(path, [0.3])  # a run done again: the curve of the new file, not the remembered one
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1))
    assert validation_curve(path) == pytest.approx([0.3])


def test_a_truncated_checkpoint_is_named(tmp_path):
    path = tmp_path / "checkpoint_final.pth"
    _nnunet_checkpoint(path, [0.1, 0.2])
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(InputError, match=re.escape(f"{path} holds no readable nnU-Net training log")):
        curve_points(path, "nnUNetTrainer", "baseline", 1, 0, 5)


def _curve(method, size, seed, values, per_epoch=10):
    return [CurvePoint(method, size, seed, 5, e, (e + 1) * per_epoch, v) for e, v in enumerate(values)]


def test_catchup_counts_iterations_to_the_baseline_of_the_same_size_and_seed():
    points = (_curve("baseline", 1, 0, [0.1, 0.3, 0.5]) + _curve("baseline", 1, 1, [0.2, 0.4, 0.9])
              + _curve("mim", 1, 0, [0.5, 0.6, 0.7]) + _curve("mim", 1, 1, [0.3, 0.5, 0.8])
              + _curve("pcl", 1, 0, [0.2, 0.4, 0.6]) + _curve("pcl", 1, 1, [0.9, 0.9, 0.9]))
    rows = {r.method: r for r in catchup(points)}
    assert set(rows) == {"mim", "pcl"}
    assert (rows["mim"].seeds, rows["mim"].reached, rows["mim"].median_iterations) == (2, 1, 10)
    assert (rows["pcl"].reached, rows["pcl"].median_iterations, rows["pcl"].baseline_iterations) == (2, 20, 30)
    assert catchup(_curve("mim", 1, 0, [0.5])) == []  # no baseline: nothing to compare with


def test_report_has_the_catchup_table_when_curves_csv_is_beside(tmp_path):
    rows = [ResultRow(m, 1, s, 5, f"p{c}_frame01", "LV", d)
            for m, d in (("baseline", 0.5), ("mim", 0.6)) for s in (0, 1) for c in range(3)]
    write_results_csv(rows, tmp_path / "results.csv")
    report_from_csv(tmp_path / "results.csv", "cmd")
    assert "Iterations to the baseline" not in (tmp_path / "report.md").read_text()
    write_curves_csv(_curve("baseline", 1, 0, [0.1, 0.3]) + _curve("mim", 1, 0, [0.2, 0.3])
                     + _curve("baseline", 1, 1, [0.1, 0.3]) + _curve("mim", 1, 1, [0.1, 0.2]), tmp_path / "curves.csv")
    report_from_csv(tmp_path / "results.csv", "cmd")
    text = (tmp_path / "report.md").read_text()
    assert "| method | 1 labeled (20 it.) |" in text and "| mim | 20 (1/2) |" in text
    (tmp_path / "curves.csv").write_text("method,labeled_subjects,seed,fold,epoch,iterations,ema_pseudo_dice\n"
                                         "mim,1,0,5,zero,10,0.2\n")
    with pytest.raises(InputError, match=re.escape(str(tmp_path / "curves.csv")) + " line 2 is no row of 7"):
        report_from_csv(tmp_path / "results.csv", "cmd")
