"""Dice per slice against base-to-apex position, on tiny label and prediction files with known per-slice Dice."""

import math
import re
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ssp.benchmark.report import report_from_csv
from nnunet_ssp.benchmark.results import ResultRow, write_results_csv
from nnunet_ssp.benchmark.slice_dice import (COLUMNS, SLICE_PLOT_FILE, SLICES_FILE, position_bin, read_slices_csv,
                                             run_slice_dice, slice_dice, slice_positions, write_slices_csv)
from nnunet_ssp.errors import InputError

SLICES = 6
TOWARD_APEX = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # slice axis (0, 0, -1): closer to the apex (1, -1, -1)
NAMES = {1: "LV", 2: "RV"}  # RV is in no file: its Dice is NaN everywhere and must not count


def _square(overlap: int) -> np.ndarray:
    """A 4 x 4 LV square in an 8 x 8 slice and a prediction covering `overlap` of its 16 pixels (nothing else)."""
    reference = np.zeros((8, 8), np.uint8)
    reference[2:6, 2:6] = 1
    prediction = np.zeros((8, 8), np.uint8)
    prediction[2:6, 2:6].flat[:overlap] = 1
    return reference, prediction


def _write(array: np.ndarray, path: Path, direction=TOWARD_APEX) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetDirection(direction)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))


def _case(folder_labels: Path, folder_predictions: Path, case: str, overlaps: Tuple[int, ...]) -> None:
    """Label and prediction of one case whose slice i has the Dice 2 k / (16 + k), k = overlaps[i]."""
    pairs = [_square(k) for k in overlaps]
    _write(np.stack([r for r, _ in pairs]), folder_labels / f"{case}.nii.gz")
    _write(np.stack([p for _, p in pairs]), folder_predictions / f"{case}.nii.gz")


def test_slice_dice_counts_overlap_per_slice():
    reference = np.zeros((4, 8, 8), np.uint8)
    prediction = np.zeros((4, 8, 8), np.uint8)
    reference[0], prediction[0] = _square(12)  # 2 * 12 / (16 + 12)
    reference[1, 0, :4] = 1  # reference only: 0
    prediction[2, 0, :3] = 2  # the other structure only: NaN for 1, 0 for 2
    reference[3, 0, :2], prediction[3, 0, 1:3] = 1, 2  # region (1, 2): one pixel shared of 2 + 2
    lv = slice_dice(reference, prediction, 1)
    np.testing.assert_allclose(lv[:2], [24 / 28, 0.0])
    assert math.isnan(lv[2]) and lv[3] == 0.0
    np.testing.assert_allclose(slice_dice(reference, prediction, (1, 2)), [24 / 28, 0.0, 0.0, 0.5])


@pytest.mark.parametrize("direction,first", [(TOWARD_APEX, 0.5 / SLICES), (tuple(np.eye(3).ravel()),
                                                                           1 - 0.5 / SLICES)])
def test_positions_run_from_base_to_apex_by_the_geometry(direction, first):
    image = sitk.GetImageFromArray(np.zeros((SLICES, 8, 8), np.uint8))
    image.SetDirection(direction)
    positions = slice_positions(image)
    assert positions[0] == pytest.approx(first) and len(positions) == SLICES
    assert [position_bin(p) for p in (0.0, 0.32, 0.34, 0.66, 0.67, 1.0)] == ["base", "base", "mid", "mid", "apex",
                                                                             "apex"]


def test_report_compares_recipes_with_the_baseline_per_third(tmp_path):
    labels = tmp_path / "labelsTs"
    # overlap k per slice (base, base, mid, mid, apex, apex): Dice 1 for 16, 2/3 for 8, 0 for 0
    overlaps: Dict[str, Tuple[int, ...]] = {"baseline": (16, 16, 8, 8, 0, 0), "mim": (16, 16, 16, 16, 8, 8)}
    rows, results = [], []
    for method, per_slice in overlaps.items():
        predictions = tmp_path / method
        for case in ("p1_frame01", "p2_frame01"):
            _case(labels, predictions, case, per_slice)
            results += [ResultRow(method, 1, 0, 5, case, "LV", 0.5)]
        rows += run_slice_dice(predictions, labels, ".nii.gz", NAMES, method, 1, 0, 5)
    assert len(rows) == 2 * 2 * SLICES * len(NAMES)
    lv = {(r.method, r.case, r.slice_index): r for r in rows if r.structure == "LV"}
    assert lv["mim", "p2_frame01", 4].dice == pytest.approx(2 / 3) and lv["baseline", "p1_frame01", 5].dice == 0.0
    assert lv["mim", "p1_frame01", 0].position == pytest.approx(0.5 / SLICES)
    assert all(math.isnan(r.dice) for r in rows if r.structure == "RV")
    write_slices_csv(rows, tmp_path / SLICES_FILE)
    assert list(map(repr, read_slices_csv(tmp_path / SLICES_FILE))) == list(map(repr, rows))  # NaN too
    write_results_csv(results, tmp_path / "results.csv")

    report = report_from_csv(tmp_path / "results.csv", "nnunet-ssp benchmark -d 1")
    by_key = {(s.method, s.bin): s for s in report.slice_stats}
    assert (by_key["baseline", "mid"].mean, by_key["baseline", "mid"].n) == (pytest.approx(2 / 3), 4)
    assert by_key["mim", "apex"].mean_difference == pytest.approx(2 / 3) and by_key["mim", "apex"].n_pairs == 4
    assert by_key["mim", "base"].mean_difference == 0.0 and by_key["baseline", "base"].mean_difference is None
    markdown = report.report_file.read_text()
    assert "## Dice per slice from base to apex" in markdown
    assert ("| baseline | 1 | 1.000 ± 0.000 (n=4) | 0.667 ± 0.000 (n=4) | 0.000 ± 0.000 (n=4) |") in markdown
    assert ("| mim | 1 | 1.000 ± 0.000 (n=4), Δ +0.000 (4 pairs) | 1.000 ± 0.000 (n=4), Δ +0.333 (4 pairs) | "
            "0.667 ± 0.000 (n=4), Δ +0.667 (4 pairs) |") in markdown
    assert (tmp_path / SLICE_PLOT_FILE).stat().st_size > 1000


def test_a_run_without_predictions_gives_no_slices(tmp_path):
    assert run_slice_dice(tmp_path / "gone", tmp_path, ".nii.gz", NAMES, "mim", 1, 0, 5) == []


@pytest.mark.parametrize("row", ["mim,1,0,5,p1_frame01,2,half,LV,0.5", "mim,1,0,5,p1_frame01,2,0.5,LV"])
def test_a_malformed_slices_row_is_refused_naming_the_file_and_line(tmp_path, row):
    path = tmp_path / SLICES_FILE
    path.write_text(",".join(COLUMNS) + "\nmim,1,0,5,p1_frame01,1,0.25,LV,0.5\n" + row + "\n")
    with pytest.raises(InputError, match=re.escape(f"{path} line 3 is no row of {len(COLUMNS)} values")):
        read_slices_csv(path)


def test_a_dataset_flipped_base_to_apex_turns_the_thirds_round(tmp_path):
    labels = tmp_path / "labelsTs"
    _case(labels, tmp_path / "mim", "p1_frame01", (16, 16, 8, 8, 0, 0))  # Dice 1 in the first slices, 0 in the last
    flipped = run_slice_dice(tmp_path / "mim", labels, ".nii.gz", NAMES, "mim", 1, 0, 5, flip_base_apex=True)
    lv = {r.slice_index: r for r in flipped if r.structure == "LV"}
    assert lv[0].position == pytest.approx(1 - 0.5 / SLICES) and position_bin(lv[0].position) == "apex"
    assert lv[5].position == pytest.approx(0.5 / SLICES) and lv[5].dice == 0.0
    unflipped = run_slice_dice(tmp_path / "mim", labels, ".nii.gz", NAMES, "mim", 1, 0, 5)
    assert [r.position for r in unflipped] == pytest.approx([1 - r.position for r in flipped])
    image = sitk.GetImageFromArray(np.zeros((SLICES, 8, 8), np.uint8))
    image.SetDirection(TOWARD_APEX)
    assert slice_positions(image, flip_base_apex=True)[0] == pytest.approx(1 - 0.5 / SLICES)
