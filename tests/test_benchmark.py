"""The benchmark: its report recomputed from a results.csv of known values, which runs are pending given their
markers, the test set it evaluates on, and (slow) a tiny real grid that resumes without redoing finished runs."""

import itertools
import json
import math
import os
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import List

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.stats import wilcoxon

from nnunet_ssp.benchmark import BenchmarkSettings, Layout, pending_runs, plan_runs, report_from_csv, run_benchmark
from nnunet_ssp.benchmark.curves import CurvePoint, read_curves_csv, write_curves_csv
from nnunet_ssp.benchmark import markers
from nnunet_ssp.benchmark.grid import FINETUNE
from nnunet_ssp.benchmark.layout import CHECKPOINTS
from nnunet_ssp.benchmark.markers import (TRAIN_INTERRUPTED, TRAIN_NOT_STARTED, train_record, train_state,
                                          write_marker, write_train_record)
from nnunet_ssp.benchmark.report import MEAN_OF_STRUCTURES, line_styles, render_seed_tests, with_structure_means
from nnunet_ssp.benchmark.seed_tests import seed_tests
from nnunet_ssp.benchmark.slice_dice import read_slices_csv
from nnunet_ssp.benchmark.results import ResultRow, read_results_csv, write_results_csv
from nnunet_ssp.benchmark.steps import train_command
from nnunet_ssp.benchmark.runner import (LOG_FILE, EvaluationSet, RunFailedError, call_logged, default_output_folder,
                                         evaluation_set, prepare_steps)
from nnunet_ssp.cli import main
from nnunet_ssp.errors import InputError
from nnunet_ssp.methods import METHODS
from nnunet_ssp.locking import LOCK_FILE, folder_lock
from nnunet_ssp.spelling import OLD_SPELLING

from helpers import in_old_spelling

COMMAND = "nnunet-ssp benchmark -d 1 --methods mim"


# ---------------------------------------------------------------- report from a known results.csv
def _known_rows() -> List[ResultRow]:
    """Baseline and MIM at 1 and 5 labeled subjects, seeds 0 and 1, three test cases, RV and LV (one RV is NaN)."""
    rng = np.random.default_rng(3)
    rows = []
    for method, shift in (("baseline", 0.0), ("mim", 0.05)):
        for size in (1, 5):
            for seed in (0, 1):
                for case in ("p1_frame01", "p1_frame09", "p2_frame01"):
                    for structure in ("RV", "LV"):
                        dice = float(np.clip(0.5 + 0.04 * size + shift + rng.normal(0, 0.05), 0, 1))
                        if (method, size, seed, case, structure) == ("mim", 1, 1, "p2_frame01", "RV"):
                            dice = math.nan
                        rows.append(ResultRow(method, size, seed, 5 + seed, case, structure, dice))
    return rows


def _values(rows, method, size, structure):
    return {(r.seed, r.case): r.dice for r in rows
            if (r.method, r.labeled_subjects, r.structure) == (method, size, structure)}


@pytest.mark.parametrize("count", [3, 13, 41])
def test_every_method_in_the_plot_has_its_own_colour_and_marker(count):
    methods = [f"method{i}" for i in range(count)] + ["baseline"]
    styles = line_styles(methods)
    assert styles[-1] == {"color": "black", "linestyle": "--", "marker": "o"}
    looks = {(tuple(s["color"]), s["marker"]) for s in styles[:-1]}
    assert len(looks) == count and ((0.0, 0.0, 0.0), "o") not in looks


def test_report_numbers_recomputed_from_results_csv(tmp_path):
    rows = _known_rows()
    write_results_csv(rows, tmp_path / "results.csv")
    (tmp_path / "benchmark.json").write_text(json.dumps({"command": COMMAND}))
    report = report_from_csv(tmp_path / "results.csv")
    stats = {(s.method, s.labeled_subjects, s.structure): s for s in report.stats}
    tests = {(t.method, t.labeled_subjects, t.structure): t for t in report.tests}
    markdown = report.report_file.read_text()
    assert f"`{COMMAND}`" in markdown
    assert report.plot_file.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    for size in (1, 5):
        for structure in ("RV", "LV"):
            for method in ("baseline", "mim"):
                values = [v for v in _values(rows, method, size, structure).values() if not math.isnan(v)]
                stat = stats[method, size, structure]
                assert stat.n == len(values)
                assert stat.mean == pytest.approx(np.mean(values), abs=1e-12)
                assert stat.sd == pytest.approx(np.std(values, ddof=1), abs=1e-12)
                assert f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f} (n={len(values)})" in markdown
            ours, theirs = _values(rows, "mim", size, structure), _values(rows, "baseline", size, structure)
            pairs = [(ours[k], theirs[k]) for k in ours if not math.isnan(ours[k])]
            expected = wilcoxon([a for a, _ in pairs], [b for _, b in pairs]).pvalue
            test = tests["mim", size, structure]
            assert test.n_pairs == len(pairs) and test.p_value == pytest.approx(expected, rel=1e-12)
            assert test.mean_difference == pytest.approx(np.mean([a - b for a, b in pairs]), abs=1e-12)
            assert f"| mim | {size} | {structure} | {len(pairs)} | {test.mean_difference:+.3f} | {expected:.3g} |" \
                in markdown
    # The mean of structures of the case whose RV is NaN is its LV alone.
    lv = _values(rows, "mim", 1, "LV")
    rv = _values(rows, "mim", 1, "RV")
    per_case = [lv[k] if math.isnan(rv[k]) else (lv[k] + rv[k]) / 2 for k in lv]
    assert stats["mim", 1, MEAN_OF_STRUCTURES].mean == pytest.approx(np.mean(per_case), abs=1e-12)
    assert stats["mim", 1, MEAN_OF_STRUCTURES].n == len(per_case) == 6
    assert "baseline" not in {t.method for t in report.tests}


def _sign_flip_p(differences) -> float:
    """Two-sided exact sign-flip p of the mean, by enumerating every sign pattern."""
    d = np.array(differences)
    flipped = [abs(np.mean(np.array(signs) * d)) for signs in itertools.product((1, -1), repeat=len(d))]
    return float(np.mean([m >= abs(d.mean()) - 1e-12 for m in flipped]))


def test_per_seed_section_pairs_seeds_and_tests_their_mean(tmp_path):
    rng = np.random.default_rng(5)
    rows = []
    for seed in range(6):
        for method, shift in (("baseline", 0.0), ("mim", 0.03), ("dino", 0.0)):
            if (method, seed) == ("baseline", 5):
                continue  # seed 5 has no baseline: it cannot be paired
            for case in ("p1_frame01", "p2_frame01", "p3_frame01"):
                for structure in ("RV", "LV"):
                    dice = 0.6 + shift + rng.normal(0, 0.05)
                    if (method, seed, case, structure) == ("dino", 2, "p1_frame01", "LV"):
                        dice = math.nan
                    rows.append(ResultRow(method, 5, seed, 5 + seed, case, structure, dice))
    write_results_csv(rows, tmp_path / "results.csv")
    report = report_from_csv(tmp_path / "results.csv")
    markdown = report.report_file.read_text()
    tests = {t.method: t for t in report.seed_tests}
    assert set(tests) == {"mim", "dino"}

    def seed_mean(method, seed):
        per_case = {}
        for r in rows:
            if (r.method, r.seed) == (method, seed) and not math.isnan(r.dice):
                per_case.setdefault(r.case, []).append(r.dice)
        return np.mean([np.mean(v) for v in per_case.values()])

    for method, test in tests.items():
        expected = [seed_mean(method, s) - seed_mean("baseline", s) for s in range(5)]
        assert test.seeds == (0, 1, 2, 3, 4)
        assert test.differences == pytest.approx(expected, abs=1e-12)
        assert test.p_value == pytest.approx(_sign_flip_p(expected), abs=1e-12)
        assert test.p_value >= 2 / 2 ** 5
        assert test.seeds_above == sum(d > 0 for d in expected)
        per_seed = ", ".join(f"{d:+.3f}" for d in expected)
        assert (f"| {method} | 5 | 5 | {per_seed} | {np.mean(expected):+.3f} | {test.seeds_above}/5 | "
                f"{test.p_value:.3g} |") in markdown
    assert "## Per seed against the baseline" in markdown
    # One seed is no test: its difference is shown, its p is not.
    (single,) = [t for t in seed_tests(with_structure_means([r for r in rows if r.seed == 0 and r.method != "dino"]),
                                       MEAN_OF_STRUCTURES)]
    assert single.differences == pytest.approx(tests["mim"].differences[:1]) and math.isnan(single.p_value)
    assert "| mim | 5 | 1 |" in "\n".join(render_seed_tests([single], MEAN_OF_STRUCTURES))


def test_the_report_writes_its_own_folder_as_a_relative_path(tmp_path):
    out = tmp_path / "results"
    write_results_csv(_known_rows(), out / "results.csv")
    settings = BenchmarkSettings(dataset=1, methods=("mim",), subjects=(1,), seeds=(0,), out=out)
    (out / "benchmark.json").write_text(json.dumps({"command": settings.command_line()}))
    assert str(out) in settings.command_line()
    report_from_csv(out / "results.csv")
    text = (out / "report.md").read_text()
    assert "--out . " in text and str(tmp_path) not in text


def test_report_only_recomputes_from_the_csv(tmp_path, capsys):
    write_results_csv(_known_rows(), tmp_path / "results.csv")
    assert main(["benchmark", "-d", "1", "--out", str(tmp_path), "--report-only"]) == 0
    assert "## mean of structures" in (tmp_path / "report.md").read_text()
    assert "Command: not recorded." in (tmp_path / "report.md").read_text()
    assert str(tmp_path / "report.md") in capsys.readouterr().out


def test_results_csv_round_trips_and_refuses_bad_rows(tmp_path):
    rows = _known_rows()
    path = tmp_path / "results.csv"
    write_results_csv(rows, path)
    back = read_results_csv(path)
    assert [r for r in back if not math.isnan(r.dice)] == [r for r in rows if not math.isnan(r.dice)]
    assert sum(math.isnan(r.dice) for r in back) == 1
    header = "method,labeled_subjects,seed,fold,case,structure,dice\n"
    for content, message in (("a,b\n", "does not start with the header"),
                             (header + "mim,one,0,5,c,LV,0.5\n", "line 2 is no row of 7 values"),
                             (header + "mim,1,0,5,c,LV\n", "line 2 is no row of 7 values"),
                             (header + "mim,1,0,5,c,LV,0.5\nmim,1,0,5,c,RV,1.5\n", "line 3 has a Dice of 1.5")):
        path.write_text(content)
        with pytest.raises(InputError, match=re.escape(str(path)) + ".*" + message):
            read_results_csv(path)


def test_csv_files_written_in_the_older_spelling_still_read(tmp_path):
    rows = _known_rows()
    results, curves = tmp_path / "results.csv", tmp_path / "curves.csv"
    write_results_csv(rows, results)
    points = [CurvePoint("mim", 1, 0, 5, 0, 10, 0.5), CurvePoint("mim", 1, 0, 5, 1, 20, 0.75)]
    write_curves_csv(points, curves)
    for path in (results, curves):
        header, rest = path.read_text().split("\n", 1)
        path.write_text(",".join(in_old_spelling(header.split(","))) + "\n" + rest)
    assert f"{OLD_SPELLING}_subjects" in results.read_text().split("\n")[0]
    assert len(read_results_csv(results)) == len(rows) and read_curves_csv(curves) == points


# ---------------------------------------------------------------- planning and resume logic without training
def _grid(tmp_path):
    settings = BenchmarkSettings("1", ("mim", "simclr"), (2, 1), (0, 3), 1, 2, 5, "P", tmp_path, "cpu")
    folds = {(1, 0): 5, (2, 0): 6, (1, 3): 7, (2, 3): 8}
    return settings, plan_runs(settings, folds), Layout(tmp_path, "Dataset001_X", "P")


def _finish(run, layout) -> None:
    """Leave the outputs a finished run has, and its marker."""
    for path in layout.outputs(run).values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    write_marker(run, layout, [["nnUNetv2_train"]], {"train": 1.0})


def test_plan_orders_pretraining_first_then_sizes_seeds_baseline_methods(tmp_path):
    settings, runs, layout = _grid(tmp_path)
    assert [r.name for r in runs] == [
        "pretrain_mim", "pretrain_simclr",
        "baseline_n1_s0", "mim_n1_s0", "simclr_n1_s0", "baseline_n1_s3", "mim_n1_s3", "simclr_n1_s3",
        "baseline_n2_s0", "mim_n2_s0", "simclr_n2_s0", "baseline_n2_s3", "mim_n2_s3", "simclr_n2_s3"]
    by_name = {r.name: r for r in runs}
    assert by_name["pretrain_simclr"].trainer == "nnUNetTrainerSSP_SimCLR_1epochs_5iters"
    assert by_name["baseline_n2_s3"].trainer == "nnUNetTrainer_2epochs_5iters" and by_name["baseline_n2_s3"].fold == 8
    mim = by_name["mim_n1_s3"]
    assert mim.trainer == "nnUNetTrainerSSPFinetune_2epochs_5iters" and mim.fold == 7
    checkpoint = layout.checkpoint(by_name["pretrain_mim"])
    assert checkpoint == (tmp_path / "models" / "mim" / "Dataset001_X" /
                          "nnUNetTrainerSSP_MIM_1epochs_5iters__P__2d" / "fold_all" / "checkpoint_final.pth")
    assert layout.model_folder(mim).parent.parent.parent == tmp_path / "models" / "mim"
    assert layout.model_folder(by_name["simclr_n1_s3"]) != layout.model_folder(mim)  # same trainer, other root
    argv = train_command(mim, layout, "cpu", checkpoint, resume=False)
    assert argv[1:] == ["Dataset001_X", "2d", "7", "-p", "P", "-tr", "nnUNetTrainerSSPFinetune_2epochs_5iters",
                        "-device", "cpu", "-pretrained_weights", str(checkpoint)]
    assert train_command(mim, layout, "cpu", checkpoint, resume=True)[-1] == "--c"
    assert "--finetune-epochs 2 --iters 5" in settings.command_line()


def test_recipes_pretrain_once_per_pretraining_variant_and_share_the_baseline(tmp_path, nnunet_env):
    settings = BenchmarkSettings("1", ("mim", "simclr"), (1,), (0,), 1, 2, 5, "P", tmp_path, "cpu",
                                 pretrain_variants=("default", "lr1e2"),
                                 finetune_variants=("default", "lr5e3_warmup5pct"))
    runs = plan_runs(settings, {(1, 0): 5})
    by_name = {r.name: r for r in runs}
    assert list(by_name)[:4] == ["pretrain_mim", "pretrain_mim.lr1e2", "pretrain_simclr", "pretrain_simclr.lr1e2"]
    assert [r.label for r in runs if r.labeled_subjects == 1] == [
        "baseline", "mim", "mim+lr5e3_warmup5pct", "mim.lr1e2", "mim.lr1e2+lr5e3_warmup5pct",
        "simclr", "simclr+lr5e3_warmup5pct", "simclr.lr1e2", "simclr.lr1e2+lr5e3_warmup5pct"]
    tuned = by_name["mim.lr1e2+lr5e3_warmup5pct_n1_s0"]
    assert tuned.trainer == "nnUNetTrainerSSPFinetune_lr5e3_warmup5pct_2epochs_5iters"
    assert tuned.pretraining.trainer == "nnUNetTrainerSSP_MIM_lr1e2_1epochs_5iters"
    layout = Layout(tmp_path, "Dataset001_X", "P")
    assert layout.results_root(tuned) == tmp_path / "models" / "mim.lr1e2"
    folders = [layout.model_folder(r) for r in runs]
    assert len(set(folders)) == len(folders)  # no two runs share nnU-Net's output folder
    assert "--pretrain-variants default lr1e2 --finetune-variants default lr5e3_warmup5pct" in settings.command_line()
    assert " --pretrain-variants" not in _grid(tmp_path)[0].command_line()


@pytest.mark.parametrize("variants,message", [
    ({"pretrain_variants": ("mask60",), "methods": ("simclr",)},
     "nnUNetTrainerSSP_SimCLR_mask60_1epochs_5iters is no trainer: a token of 'mask60' is unknown"),
    ({"finetune_variants": ("lr1e2_lr1e3",)}, "nnUNetTrainerSSPFinetune_lr1e2_lr1e3_2epochs_5iters is no trainer"),
])
def test_a_variant_that_makes_no_trainer_is_refused_by_name(tmp_path, nnunet_env, variants, message):
    settings = BenchmarkSettings(**{"dataset": "1", "methods": ("mim",), "subjects": (1,), "seeds": (0,),
                                    "pretrain_epochs": 1, "finetune_epochs": 2, "iters": 5, **variants})
    with pytest.raises(InputError, match=re.escape(message)):
        plan_runs(settings, {(1, 0): 5})


def test_a_variants_own_length_replaces_the_schedule_options(tmp_path, nnunet_env):
    settings = BenchmarkSettings("1", methods=("mim",), subjects=(1,), seeds=(0,), pretrain_epochs=1, finetune_epochs=2,
                                 iters=5, pretrain_variants=("default", "100epochs", "8iters"))
    trainers = {r.name: r.trainer for r in plan_runs(settings, {(1, 0): 5})}
    assert trainers["pretrain_mim"] == "nnUNetTrainerSSP_MIM_1epochs_5iters"
    assert trainers["pretrain_mim.100epochs"] == "nnUNetTrainerSSP_MIM_100epochs_5iters"
    assert trainers["pretrain_mim.8iters"] == "nnUNetTrainerSSP_MIM_8iters_1epochs"
    assert trainers["baseline_n1_s0"] == "nnUNetTrainer_2epochs_5iters"


@pytest.mark.parametrize("variant", ["lr1e2 warmup0pct", "", "mask60__grid4", "x/y"])
def test_malformed_variants_are_refused(variant):
    with pytest.raises(InputError, match="--finetune-variants takes variant tokens joined by '_'"):
        BenchmarkSettings("1", finetune_variants=(variant,))


def test_every_method_has_its_pretraining_trainer():
    from nnunet_ssp import pretrain
    from nnunet_ssp.methods import METHODS

    for method in METHODS.values():
        assert getattr(pretrain, method.trainer).method_name == method.name


def test_markers_written_in_the_older_spelling_still_count(tmp_path):
    settings, runs, layout = _grid(tmp_path)
    for run in runs:
        _finish(run, layout)
        marker = layout.marker(run)
        marker.write_text(json.dumps(in_old_spelling(json.loads(marker.read_text()))))
    assert any(run.pretraining is not None for run in runs)  # a nested record, the pretraining's, is respelled too
    assert f'"{OLD_SPELLING}_subjects"' in layout.marker(runs[-1]).read_text()
    assert pending_runs(runs, layout) == []


def test_pending_runs_follow_the_markers(tmp_path):
    settings, runs, layout = _grid(tmp_path)
    assert pending_runs(runs, layout) == runs
    for run in runs[:5]:
        _finish(run, layout)
    assert pending_runs(runs, layout) == runs[5:]
    layout.marker(runs[3]).unlink()  # a deleted marker: only that run is pending again
    assert pending_runs(runs, layout) == [runs[3]] + runs[5:]
    layout.summary(runs[2]).unlink()  # an output gone
    assert pending_runs(runs, layout) == runs[2:4] + runs[5:]
    layout.marker(runs[4]).write_text("{broken")
    assert pending_runs(runs, layout) == runs[2:]
    # Another pretraining schedule changes the weights mim_n1_s0 starts from: its old marker no longer counts.
    other = BenchmarkSettings("1", ("mim", "simclr"), (2, 1), (0, 3), 3, 2, 5, "P", tmp_path, "cpu")
    rerun = plan_runs(other, {(1, 0): 5, (2, 0): 6, (1, 3): 7, (2, 3): 8})
    _finish(runs[3], layout)
    assert runs[3] not in pending_runs(runs, layout) and rerun[3] in pending_runs(rerun, layout)


def test_a_pretraining_done_again_makes_its_fine_tunings_pending(tmp_path):
    settings, runs, layout = _grid(tmp_path)
    pretrain_mim, mim_n1_s0 = runs[0], runs[3]
    for run in runs[:5]:
        _finish(run, layout)
    assert pending_runs(runs, layout) == runs[5:]
    layout.marker(pretrain_mim).unlink()  # pending again, and so is every fine-tuning that starts from it
    assert pending_runs(runs, layout) == [pretrain_mim, mim_n1_s0] + runs[5:]
    layout.checkpoint(pretrain_mim).write_text("weights of the new pretraining")
    write_marker(pretrain_mim, layout, [["nnUNetv2_train"]], {"train": 2.0})
    assert pending_runs(runs, layout) == [mim_n1_s0] + runs[5:]  # its marker names the old checkpoint
    _finish(mim_n1_s0, layout)
    assert pending_runs(runs, layout) == runs[5:]


def test_fine_tunings_made_before_the_fine_tuning_defaults_changed_are_redone(tmp_path, monkeypatch):
    settings, runs, layout = _grid(tmp_path)
    for run in runs:
        _finish(run, layout)
    assert pending_runs(runs, layout) == []
    monkeypatch.setattr(markers, "FINETUNE_RECIPE_VERSION", markers.FINETUNE_RECIPE_VERSION + 1)
    # same trainer names, other defaults: the fine-tunings only; pretraining and nnU-Net's baseline are unchanged
    assert pending_runs(runs, layout) == [run for run in runs if run.kind == FINETUNE]
    assert {run.method for run in pending_runs(runs, layout)} == {"mim", "simclr"}


def test_a_pretraining_made_before_its_method_defaults_changed_is_redone_with_its_fine_tunings(tmp_path, monkeypatch):
    settings, runs, layout = _grid(tmp_path)
    def versions(**by_method):
        for name, version in by_method.items():
            monkeypatch.setitem(METHODS, name, replace(METHODS[name], recipe_version=version))

    versions(mim=1, simclr=1)  # records made before any method had a version
    for run in runs:
        _finish(run, layout)
    versions(mim=1)  # version 1 is the one they were made with
    assert pending_runs(runs, layout) == []
    versions(mim=2)
    # same trainer name, other defaults: MIM's pretraining and the fine-tunings from it; SimCLR's and the baselines stay
    assert pending_runs(runs, layout) == [run for run in runs if run.method == "mim"]


def test_an_interrupted_run_continues_where_it_stopped(tmp_path):
    settings, runs, layout = _grid(tmp_path)
    evaluation = EvaluationSet(tmp_path / "imagesTs", tmp_path / "labelsTs", ".nii.gz")
    pretrain_mim, mim = runs[0], runs[3]
    _finish(pretrain_mim, layout)
    model = layout.model_folder(mim)
    model.mkdir(parents=True)
    for name in CHECKPOINTS:  # left by an earlier training of the run, whose marker was deleted to redo it
        (model / name).write_text("old")
    steps = prepare_steps(mim, layout, "cpu", evaluation)
    assert list(steps) == ["train", "predict", "evaluate"]
    assert steps["train"][-2:] == ["-pretrained_weights", str(layout.checkpoint(pretrain_mim))]
    assert not [name for name in CHECKPOINTS if (model / name).exists()]

    write_train_record(mim, layout, steps["train"])  # started, cut short before its first checkpoint
    assert train_state(mim, layout) == TRAIN_NOT_STARTED
    (model / "checkpoint_latest.pth").write_text("epoch 50")  # cut short later
    assert train_state(mim, layout) == TRAIN_INTERRUPTED
    assert prepare_steps(mim, layout, "cpu", evaluation)["train"][-1] == "--c"
    assert (model / "checkpoint_latest.pth").read_text() == "epoch 50"

    (model / "checkpoint_final.pth").write_text("final")
    write_train_record(mim, layout, steps["train"], 12.5)  # training finished, prediction cut short
    assert list(prepare_steps(mim, layout, "cpu", evaluation)) == ["predict", "evaluate"]
    assert train_record(mim, layout)["seconds"] == 12.5 and (model / "checkpoint_final.pth").is_file()

    layout.checkpoint(pretrain_mim).write_text("weights of a new pretraining")  # the training started from others
    assert train_state(mim, layout) == TRAIN_NOT_STARTED
    assert "--c" not in prepare_steps(mim, layout, "cpu", evaluation)["train"]
    assert not (model / "checkpoint_final.pth").exists()
    assert list(prepare_steps(pretrain_mim, layout, "cpu", evaluation)) == ["train"]


# ---------------------------------------------------------------- the evaluated test set
def _touch(folder: Path, names: List[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def test_evaluation_set_links_only_labeled_test_images(tmp_path):
    raw = tmp_path / "Dataset001_X"
    _touch(raw, [])
    (raw / "dataset.json").write_text(json.dumps({"file_ending": ".nii.gz"}))
    _touch(raw / "imagesTs", ["a_0000.nii.gz", "a_0001.nii.gz", "b_0000.nii.gz"])
    _touch(raw / "labelsTs", ["a.nii.gz", "b.nii.gz"])
    assert evaluation_set(raw, tmp_path / "out").images == raw / "imagesTs"
    (raw / "labelsTs" / "b.nii.gz").unlink()
    chosen = evaluation_set(raw, tmp_path / "out")
    assert chosen.images == tmp_path / "out" / "test_images"
    assert sorted(p.name for p in chosen.images.iterdir()) == ["a_0000.nii.gz", "a_0001.nii.gz"]
    assert (chosen.images / "a_0001.nii.gz").resolve() == (raw / "imagesTs" / "a_0001.nii.gz").resolve()
    (raw / "labelsTs" / "a.nii.gz").unlink()
    with pytest.raises(InputError, match=re.escape(str(raw / "labelsTs")) + " holds a label of none"):
        evaluation_set(raw, tmp_path / "out")
    os.rename(raw / "labelsTs", raw / "other")
    with pytest.raises(InputError, match=re.escape(str(raw / "labelsTs")) + " is missing"):
        evaluation_set(raw, tmp_path / "out")


def test_a_failing_step_names_its_log(tmp_path):
    log = tmp_path / "train.log"
    env = {**os.environ, "nnUNet_results": str(tmp_path)}
    call_logged([sys.executable, "-c", "print('fine')"], env, log, "x")
    assert log.read_text().splitlines()[1] == "fine"
    with pytest.raises(RunFailedError, match=f"baseline_n1_s0: train exited with code 3; see {re.escape(str(log))}."):
        call_logged([sys.executable, "-c", "import sys; print('broke'); sys.exit(3)"], env, log,
                    "baseline_n1_s0: train")
    assert log.read_text().startswith(f"$ nnUNet_results={tmp_path} ") and "broke" in log.read_text()


def test_default_output_folder_needs_nnunet_results(tmp_path, monkeypatch):
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    assert default_output_folder("Dataset001_X") == tmp_path / "Dataset001_X" / "ssp_benchmark"
    monkeypatch.delenv("nnUNet_results")
    with pytest.raises(InputError, match="nnUNet_results is not set; export it or pass --out"):
        default_output_folder("Dataset001_X")


@pytest.mark.parametrize("argv,message", [
    (["--iters", "0"], "--iters 0 must be at least 1."),
    (["--finetune-epochs", "-2"], "--finetune-epochs -2 must be at least 1."),
    (["-d", "42"], "No nnU-Net dataset with ID 42"),
])
def test_benchmark_refuses_bad_arguments(nnunet_env, capsys, argv, message):
    assert main(["benchmark", "-d", "1", *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_second_benchmark_in_the_same_folder_is_refused(tmp_path, nnunet_env):
    (nnunet_env["nnUNet_raw"] / "Dataset001_X").mkdir()
    out = tmp_path / "out"
    with folder_lock(out):
        with pytest.raises(InputError, match=f"^{re.escape(str(out))} is in use by another nnunet-ssp process"):
            run_benchmark(BenchmarkSettings("1", ("mim",), out=out, device="cpu"))
    assert os.listdir(out) == [LOCK_FILE]


def test_settings_refuse_unknown_methods():
    with pytest.raises(InputError, match="Methods must be some of simclr, pcl, dino, mim, not moco."):
        BenchmarkSettings("1", ("mim", "moco"))


def test_no_methods_gives_only_the_baselines_and_a_command_that_says_so():
    settings = BenchmarkSettings("1", (), (1, 5), (0,))
    assert [r.name for r in plan_runs(settings, {(1, 0): 5, (5, 0): 6})] == ["baseline_n1_s0", "baseline_n5_s0"]
    assert " --methods --subjects 1 5 " in settings.command_line()


# ---------------------------------------------------------------- a tiny real grid (slow)
def _started_steps(log: Path, since: int) -> List[str]:
    """`<run> <step>` of each step the runner started after line `since` of its log."""
    lines = [line.split() for line in log.read_text().splitlines()[since:]]
    return [f"{words[2]} {words[3].rstrip(':')}" for words in lines if words[1] == "start"]


def _started_runs(log: Path, since: int) -> List[str]:
    """Names of the runs the runner started after line `since` of its log."""
    return sorted({step.split()[0] for step in _started_steps(log, since)})


@pytest.mark.slow
def test_tiny_benchmark_runs_resumes_and_redoes_only_a_deleted_run(tmp_path, nnunet_env, monkeypatch):
    from nnunet_ssp.converters import convert_acdc
    from nnunet_ssp.cpu_plans import plan_and_preprocess_cpu
    from nnunet_ssp.phantom import generate_phantom

    generate_phantom(tmp_path / "phantom", 8, seed=0, image_size=32, spacing=3.0, progress=False)
    convert_acdc(tmp_path / "phantom", 1, test_subjects=2)
    monkeypatch.setenv("nnUNet_n_proc_DA", "1")  # nnU-Net's planner needs at least one
    plan_and_preprocess_cpu(1, num_processes=1, batch_size=2)
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    out = tmp_path / "bench"
    settings = BenchmarkSettings("1", ("mim",), (1,), (0,), 1, 1, 2, "nnUNetPlansCPU", out, "cpu",
                                 seed_trainings=True)

    first = run_benchmark(settings)
    assert (first.n_runs, first.done, first.skipped) == (3, 3, 0)
    rows = read_results_csv(out / "results.csv")
    assert len(rows) == 2 * 4 * 3  # (baseline, mim) x 4 test cases x (RV, MYO, LV)
    assert {(r.method, r.labeled_subjects, r.seed, r.fold) for r in rows} == {("baseline", 1, 0, 5), ("mim", 1, 0, 5)}
    assert {r.structure for r in rows} == {"RV", "MYO", "LV"}
    assert "| mim | 1 | mean of structures | 4 |" in (out / "report.md").read_text()
    curves = read_curves_csv(out / "curves.csv")
    assert sorted((p.method, p.iterations) for p in curves) == [("baseline", 2), ("mim", 2)]  # 1 epoch x 2 iters
    sidecar = json.loads((tmp_path / "nnUNet_preprocessed" / "Dataset001_ACDC" / "splits_ssp.json").read_text())
    runs = plan_runs(settings, {(1, 0): 5}, sidecar["pretraining_fold"]["fold"])
    layout = Layout(out, "Dataset001_ACDC", "nnUNetPlansCPU")
    mtimes = {run.name: layout.checkpoint(run).stat().st_mtime_ns for run in runs}
    log = out / LOG_FILE
    assert _started_runs(log, 0) == ["baseline_n1_s0", "mim_n1_s0", "pretrain_mim"]
    for run in runs:  # --seed-trainings: each training seeded with its split seed (pretraining 0), and recorded
        (seeds,) = json.loads((layout.run_folder(run) / "seeds.json").read_text())
        assert (seeds["torch"], seeds["numpy"], seeds["seed_source"]) == (0, 0, "given")
    slices = read_slices_csv(out / "slices.csv")
    test_slices = sum(sitk.ReadImage(str(f)).GetSize()[2]
                      for f in (tmp_path / "nnUNet_raw" / "Dataset001_ACDC" / "labelsTs").glob("*.nii.gz"))
    assert len(slices) == 2 * 3 * test_slices  # (baseline, mim) x (RV, MYO, LV) x every slice of the test labels
    per_slice = (out / "report.md").read_text().split("## Dice per slice from base to apex")[1]
    assert re.search(r"\| mim \| 1 \| .*Δ [+-]\d\.\d{3} \(\d+ pairs\)", per_slice)
    assert (out / "dice_per_slice.png").is_file()

    lines = len(log.read_text().splitlines())
    second = run_benchmark(settings)
    assert (second.done, second.skipped) == (0, 3)
    assert _started_runs(log, lines) == []
    assert {run.name: layout.checkpoint(run).stat().st_mtime_ns for run in runs} == mtimes

    layout.marker(runs[1]).unlink()  # the baseline
    lines = len(log.read_text().splitlines())
    third = run_benchmark(settings)
    assert (third.done, third.skipped) == (1, 2)
    assert _started_runs(log, lines) == ["baseline_n1_s0"]
    after = {run.name: layout.checkpoint(run).stat().st_mtime_ns for run in runs}
    assert after["baseline_n1_s0"] > mtimes["baseline_n1_s0"]
    assert (after["pretrain_mim"], after["mim_n1_s0"]) == (mtimes["pretrain_mim"], mtimes["mim_n1_s0"])
    assert len(read_results_csv(out / "results.csv")) == len(rows)

    # Stopped after its training, as the runner leaves a run stopped in prediction: training is kept.
    write_train_record(runs[1], layout, ["nnUNetv2_train"], 1.0)
    layout.marker(runs[1]).unlink()
    lines = len(log.read_text().splitlines())
    fourth = run_benchmark(settings)
    assert (fourth.done, fourth.skipped, fourth.folds) == (1, 2, {(1, 0): 5})
    assert _started_steps(log, lines) == ["baseline_n1_s0 predict", "baseline_n1_s0 evaluate"]
    assert layout.checkpoint(runs[1]).stat().st_mtime_ns == after["baseline_n1_s0"]
    assert not layout.train_record(runs[1]).exists() and len(read_results_csv(out / "results.csv")) == len(rows)
