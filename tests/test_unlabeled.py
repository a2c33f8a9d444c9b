"""prepare-unlabeled on tiny cines: nnU-Net's own preprocessing reproduced, manifest, resume, bad inputs, Sunnybrook."""

import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import blosc2
import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ssp.cli import main
from nnunet_ssp.converters.acdc import read_info_cfg
from nnunet_ssp.converters.cases import case_id
from nnunet_ssp.errors import InputError
from nnunet_ssp.locking import LOCK_FILE, folder_lock
from nnunet_ssp.positions import runs_base_to_apex
from nnunet_ssp.slices import labeled_case_slices
from nnunet_ssp.spelling import OLD_SPELLING
from nnunet_ssp.unlabeled import (MANIFEST_FILE, REPORT_FILE, ManifestRow, pool_flips_base_apex, prepare_unlabeled,
                                  read_manifest, unlabeled_pool_slices)
from nnunet_ssp.unlabeled.manifest import write_manifest

from helpers import PLANS, SHARED, in_old_spelling
DATASET = "Dataset001_ACDC"
FRAMES = 6
SHAPE = (5, 40, 36)  # z, y, x
SPACING = (1.5, 1.5, 8.0)  # x, y, z
ED, ES = 1, 4  # ACDC frame numbers (1-based)
SUBJECTS = [f"patient{i:03d}" for i in range(1, 7)]
TEST_SUBJECT = "patient006"
CROPPED_SUBJECT = "patient002"  # its first slice is empty in every frame, so nnU-Net crops it away

_N = np.array([1.0, -1.0, -1.0]) / np.sqrt(3.0)  # towards the apex in LPS
_U = np.array([1.0, 1.0, 0.0]) / np.sqrt(2.0)
_V = np.cross(_N, _U)
TOWARD_APEX = np.stack([_U, _V, _N], axis=1)  # columns: the x, y and slice axes in world coordinates
TOWARD_BASE = np.stack([_U, -_V, -_N], axis=1)

SUNNYBROOK = SHARED / "data" / "sunnybrook-cine-5"


# ---------------------------------------------------------------- image builders
def write_image(array: np.ndarray, path: Path, spacing=SPACING, direction=TOWARD_APEX, vector=False) -> Path:
    """Write a (t,) z, y, x array with the given spacing (x, y, z) and 3D direction (columns x, y, slice axis)."""
    image = sitk.GetImageFromArray(array, isVector=vector)
    dimension = image.GetDimension()
    image.SetSpacing(tuple(spacing) + (1.0,) * (dimension - 3))
    full = np.eye(dimension)
    full[:3, :3] = direction
    image.SetDirection(full.ravel().tolist())
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), True)
    return path


def make_cine(seed: int, frames: int = FRAMES, shape=SHAPE, empty_first_slice: bool = False) -> np.ndarray:
    """Random int16 frames inside a zero border (so nnU-Net crops), optionally with an empty first slice."""
    rng = np.random.default_rng(seed)
    cine = np.zeros((frames,) + tuple(shape), np.int16)
    cine[:, :, 4:-4, 3:-3] = rng.integers(1, 500, (frames, shape[0], shape[1] - 8, shape[2] - 6))
    if empty_first_slice:
        cine[:, 0] = 0
    return cine


def make_acdc(folder: Path) -> None:
    """ACDC subject folders with 4D cine, ED/ES frames and labels; odd subjects' slices run towards the apex."""
    for k, name in enumerate(SUBJECTS):
        sub = folder / name
        direction = TOWARD_APEX if k % 2 == 0 else TOWARD_BASE
        cine = make_cine(100 + k, empty_first_slice=name == CROPPED_SUBJECT)  # seeds the other inputs do not use
        write_image(cine, sub / f"{name}_4d.nii.gz", direction=direction)
        for frame in (ED, ES):
            write_image(cine[frame - 1], sub / f"{name}_frame{frame:02d}.nii.gz", direction=direction)
            labels = np.zeros(SHAPE, np.uint8)
            labels[:, 12:20, 10:20] = (k + frame) % 3 + 1
            write_image(labels, sub / f"{name}_frame{frame:02d}_gt.nii.gz", direction=direction)
        (sub / "Info.cfg").write_text(f"ED: {ED}\nES: {ES}\nGroup: NOR\nNbFrame: {FRAMES}\n")


# ---------------------------------------------------------------- fixtures
ROOTS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """A converted and CPU-planned tiny ACDC dataset (patient006 held out for testing), built once."""
    from nnunet_ssp.converters import convert_acdc
    from nnunet_ssp.cpu_plans import plan_and_preprocess_cpu
    base = tmp_path_factory.mktemp("planned")
    make_acdc(base / "acdc")
    (base / "test_list.txt").write_text(TEST_SUBJECT + "\n")
    with pytest.MonkeyPatch.context() as mp:
        for name in ROOTS:
            (base / name).mkdir()
            mp.setenv(name, str(base / name))
        convert_acdc(base / "acdc", 1, test_list=base / "test_list.txt")
        plan_and_preprocess_cpu(1, num_processes=1)
    return base


@pytest.fixture
def env(planned, tmp_path, monkeypatch) -> Dict[str, Path]:
    """A private copy of the planned dataset's roots, exported; `acdc` is the cine folder."""
    base = planned
    paths = {"acdc": base / "acdc"}
    for name in ROOTS:
        shutil.copytree(base / name, tmp_path / name)
        monkeypatch.setenv(name, str(tmp_path / name))
        paths[name] = tmp_path / name
    paths["pool"] = tmp_path / "nnUNet_preprocessed" / DATASET / f"{PLANS}_2d_unlabeled"
    paths["labeled"] = tmp_path / "nnUNet_preprocessed" / DATASET / f"{PLANS}_2d"
    return paths


def prepare(input_dir: Path, **kwargs):
    kwargs.setdefault("plans_name", PLANS)
    kwargs.setdefault("num_processes", 1)
    return prepare_unlabeled(1, input_dir, **kwargs)


def load(folder: Path, case: str):
    data = blosc2.open(str(folder / f"{case}.b2nd"), mode="r")[:]
    seg = blosc2.open(str(folder / f"{case}_seg.b2nd"), mode="r")[:]
    with open(folder / f"{case}.pkl", "rb") as f:
        return data, seg, pickle.load(f)


def pool_cases(folder: Path) -> List[str]:
    return sorted(p.name[:-5] for p in folder.glob("*.b2nd") if not p.name.endswith("_seg.b2nd"))


# ---------------------------------------------------------------- nnU-Net equivalence and the manifest
def test_frames_equal_nnunet_preprocessing_of_the_labeled_cases(env):
    """ED and ES taken from each cine equal nnU-Net's own preprocessing of the labeled frames."""
    result = prepare(env["acdc"])
    assert TEST_SUBJECT in result.refused
    compared = 0
    for subject in SUBJECTS[:-1]:
        for frame in (ED, ES):
            ours = load(env["pool"], f"{subject}_t{frame - 1:03d}")
            theirs = load(env["labeled"], f"{subject}_frame{frame:02d}")
            assert ours[0].shape == theirs[0].shape
            np.testing.assert_allclose(ours[0], theirs[0], rtol=0, atol=1e-5)
            for key in ("spacing", "shape_before_cropping", "bbox_used_for_cropping",
                        "shape_after_cropping_and_before_resampling"):
                assert np.array_equal(np.asarray(ours[2][key]), np.asarray(theirs[2][key])), key
            np.testing.assert_allclose(ours[2]["sitk_stuff"]["direction"], theirs[2]["sitk_stuff"]["direction"],
                                       atol=1e-6)
            assert ours[1].dtype == np.int16 and ours[1].shape == theirs[1].shape
            compared += 1
    assert compared == 10
    cropped = load(env["pool"], f"{CROPPED_SUBJECT}_t000")
    assert cropped[0].shape[1] == SHAPE[0] - 1  # nnU-Net cropped the empty slice


def test_nnunet_loader_reads_the_pool(env):
    """nnU-Net's blosc2 dataset and 2D data loader open the pool as they open nnU-Net's own cases."""
    from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
    from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    prepare(env["acdc"])
    dataset = nnUNetDatasetBlosc2(str(env["pool"]))
    assert len(dataset.identifiers) == 5 * FRAMES
    plans = PlansManager(str(env["nnUNet_preprocessed"] / DATASET / f"{PLANS}.json"))
    dataset_json = json.loads((env["nnUNet_preprocessed"] / DATASET / "dataset.json").read_text())
    patch = plans.get_configuration("2d").patch_size
    loader = nnUNetDataLoader(dataset, 4, patch, patch, plans.get_label_manager(dataset_json),
                              oversample_foreground_percent=0.5)
    batch = loader.generate_train_batch()
    assert tuple(batch["data"].shape) == (4, 1, *patch)
    assert np.isfinite(np.asarray(batch["data"])).all() and float(np.asarray(batch["data"]).std()) > 0.1


def test_manifest_counts_positions_and_the_slice_table(env):
    """One row per stored slice; positions in [0, 1], monotone, oriented by geometry, unshifted by the crop."""
    result = prepare(env["acdc"])
    rows = read_manifest(env["pool"])
    assert rows == result.rows
    stored = {case: load(env["pool"], case)[0].shape[1] for case in pool_cases(env["pool"])}
    assert len(rows) == sum(stored.values()) == FRAMES * (5 * SHAPE[0] - 1)
    assert {(r.subject, r.frame) for r in rows} == {(s, t) for s in SUBJECTS[:-1] for t in range(FRAMES)}
    for case in stored:
        stack = [r for r in rows if r.case == case]
        subject = stack[0].subject
        assert [r.z for r in stack] == list(range(stored[case]))
        assert [r.slice_index for r in stack] == [z + (subject == CROPPED_SUBJECT) for z in range(stored[case])]
        assert all(r.num_slices == SHAPE[0] and 0 <= r.position <= 1 for r in stack)
        assert stack[0].source == str(env["acdc"] / subject / f"{subject}_4d.nii.gz")
        steps = np.diff([r.position for r in stack])
        toward_apex = SUBJECTS.index(subject) % 2 == 0  # as make_acdc wrote the geometry
        assert (steps > 0).all() if toward_apex else (steps < 0).all()
    positions = {(r.subject, r.slice_index): r.position for r in rows if r.frame == 0}
    for index in range(1, SHAPE[0]):  # the crop does not shift the cropped stack's positions
        assert positions[CROPPED_SUBJECT, index] == positions["patient004", index]

    table = unlabeled_pool_slices(str(env["nnUNet_preprocessed"] / DATASET), f"{PLANS}_2d",
                                  exclude_subjects=["patient003"])
    assert len(table) == len(rows) - FRAMES * SHAPE[0] and "patient003" not in table.subjects()
    labeled = labeled_case_slices(str(env["pool"]), ["patient001_t000"], [0, 1, 2])
    row = table.case.index("patient001_t000")
    assert table.data_file(row) == str(env["pool"] / "patient001_t000.b2nd")
    assert (table.z[row:row + SHAPE[0]], table.position[row:row + SHAPE[0]]) == (labeled.z, labeled.position)
    assert runs_base_to_apex(TOWARD_APEX[:, 2]) and not runs_base_to_apex(TOWARD_BASE[:, 2])


def test_flip_rewrites_positions_without_preprocessing_again(env):
    prepare(env["acdc"])
    assert not pool_flips_base_apex(env["pool"])
    before = {(r.case, r.z): r.position for r in read_manifest(env["pool"])}
    mtime = (env["pool"] / "patient001_t000.b2nd").stat().st_mtime_ns
    flipped = prepare(env["acdc"], flip_base_apex=True)
    assert flipped.prepared == [] and (env["pool"] / "patient001_t000.b2nd").stat().st_mtime_ns == mtime
    assert pool_flips_base_apex(env["pool"])  # what pretraining reads to flip the labeled cases alike
    after = {(r.case, r.z): r.position for r in read_manifest(env["pool"])}
    assert after.keys() == before.keys()
    assert all(abs(after[k] - (1 - before[k])) < 1e-12 for k in before)


def test_second_run_does_nothing_and_says_so(env, capsys):
    assert main(["prepare-unlabeled", "-d", "1", "-p", PLANS, "-i", str(env["acdc"]), "-np", "1"]) == 0
    first = capsys.readouterr()
    assert re.search(r"prepared now\s+5\s+30\s+144\n", first.out)
    stamps = {p.name: p.stat().st_mtime_ns for p in env["pool"].iterdir() if p.suffix in (".b2nd", ".pkl")}
    assert main(["prepare-unlabeled", "-d", "1", "-p", PLANS, "-i", str(env["acdc"]), "-np", "1"]) == 0
    second = capsys.readouterr()
    assert "All 30 frames are already in" in second.out and "nothing to preprocess" in second.out
    assert re.search(r"skipped \(already there\)\s+5\s+30\s+144\n", second.out)
    assert {p.name: p.stat().st_mtime_ns for p in env["pool"].iterdir() if p.suffix in (".b2nd", ".pkl")} == stamps
    assert len(read_manifest(env["pool"])) == 144


def test_test_subjects_are_refused_unless_allowed_and_exclude_works(env):
    result = prepare(env["acdc"], exclude=["patient003"])
    assert result.refused == [TEST_SUBJECT] and result.excluded == ["patient003"]
    assert {r.subject for r in result.rows} == {"patient001", "patient002", "patient004", "patient005"}
    report = json.loads((env["pool"] / REPORT_FILE).read_text())
    assert report["refused_test_subjects"] == [TEST_SUBJECT] and report["excluded_subjects"] == ["patient003"]
    allowed = prepare(env["acdc"], allow_test_subjects=True)
    assert allowed.refused == [] and TEST_SUBJECT in {r.subject for r in allowed.rows}
    assert len(allowed.prepared) == 2 * FRAMES  # patient003 and patient006; the rest was there


def test_killed_run_resumes_and_leaves_only_complete_cases(env, tmp_path):
    """A run SIGKILLed after a few cases leaves only complete, readable cases; a restart completes the pool."""
    cine = make_cine(7, frames=40, shape=(8, 128, 128))
    write_image(cine, tmp_path / "big" / "big_4d.nii.gz", spacing=(1.0, 1.0, 8.0))
    command = [sys.executable, "-m", "nnunet_ssp.cli", "prepare-unlabeled", "-d", "1", "-p", PLANS,
               "-i", str(tmp_path / "big"), "-np", "2"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        deadline = time.time() + 120
        while len(pool_cases(env["pool"])) < 4 and process.poll() is None and time.time() < deadline:
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    written = pool_cases(env["pool"])
    assert 4 <= len(written) < 40, "the run must be killed halfway"
    for case in written:
        data, seg, properties = load(env["pool"], case)
        assert data.shape == seg.shape and np.isfinite(data).all() and "bbox_used_for_cropping" in properties

    result = prepare(tmp_path / "big")
    assert len(result.already_done) == len(written) and len(result.prepared) == 40 - len(written)
    assert pool_cases(env["pool"]) == [f"big_t{t:03d}" for t in range(40)]
    assert [p.name for p in env["pool"].glob(".*")] == [LOCK_FILE]  # no temporary leftovers
    for case in pool_cases(env["pool"]):
        assert np.isfinite(load(env["pool"], case)[0]).all()
    assert len(read_manifest(env["pool"])) == 40 * 8


def test_a_pool_another_run_fills_is_refused(env):
    with folder_lock(env["pool"]):
        with pytest.raises(InputError, match=f"^{re.escape(str(env['pool']))} is in use by another nnunet-ssp "):
            prepare(env["acdc"])
    assert os.listdir(env["pool"]) == [LOCK_FILE]


def test_manifest_of_100k_rows_reads_back_without_excluded_subjects(tmp_path):
    rows = [ManifestRow(f"s{i // 1000}_t{i // 10 % 100:03d}", f"s{i // 1000}", i // 10 % 100, i % 10, i % 10, 10,
                        (i % 10 + 0.5) / 10, "/data/x_4d.nii.gz") for i in range(100_000)]
    folder = tmp_path / "nnUNetPlans_2d_unlabeled"
    folder.mkdir()
    write_manifest(rows, folder)
    table = unlabeled_pool_slices(str(tmp_path), "nnUNetPlans_2d", exclude_subjects=["s0"])
    assert len(table) == 99_000 and table.position[0] == rows[1000].position and table.frame[5] == 0


def test_a_manifest_written_in_the_older_spelling_still_reads(tmp_path):
    rows = [ManifestRow("s1_t000", "s1", 0, z, z, 2, (z + 0.5) / 2, "/data/s1_4d.nii.gz", "s1_frame01") for z in (0, 1)]
    write_manifest(rows, tmp_path)
    header, rest = (tmp_path / MANIFEST_FILE).read_text().split("\n", 1)
    (tmp_path / MANIFEST_FILE).write_text(",".join(in_old_spelling(header.split(","))) + "\n" + rest)
    assert f"{OLD_SPELLING}_case" in (tmp_path / MANIFEST_FILE).read_text()
    assert read_manifest(tmp_path) == rows


def test_throughput_benchmark_dataset_is_one_nnunet_reads(tmp_path):
    """The scratch dataset of the throughput benchmark: every frame a labeled case, listed by nnU-Net itself."""
    from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

    from nnunet_ssp.unlabeled.throughput import DATASET, write_frames_dataset
    cine = write_image(make_cine(0, frames=3), tmp_path / "in" / "s1_4d.nii.gz")
    write_frames_dataset([cine], tmp_path / "raw")
    folder = tmp_path / "raw" / DATASET
    meta = json.loads((folder / "dataset.json").read_text())
    assert (meta["numTraining"], meta["file_ending"]) == (3, ".nii.gz")
    assert meta["channel_names"] == {"0": "cineMRI"} and meta["labels"] == {"background": 0, "box": 1}
    cases = get_filenames_of_train_images_and_targets(str(folder), meta)
    assert sorted(cases) == ["s1_frame01", "s1_frame02", "s1_frame03"]
    assert all(Path(case["label"]).is_file() for case in cases.values())


# ---------------------------------------------------------------- bad input
def _good(folder: Path) -> Path:
    return write_image(make_cine(1), folder / "a" / "good_4d.nii.gz")


def _truncated(path: Path) -> None:
    data = write_image(make_cine(2), path).read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _with_value(value: float, frame: int) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        cine = make_cine(3).astype(np.float32)
        cine[frame, 2, 20, 20] = value
        write_image(cine, path)
    return build


def _constant_frame(path: Path) -> None:
    cine = make_cine(4)
    cine[1] = 7
    write_image(cine, path)


BAD_FILES = {
    # name: (writes the bad file at the given path, what the message says after the path, the bad frame)
    "3d in a folder of cines": (lambda p: write_image(make_cine(5)[0], p),
                                r" is 3D, but this folder holds 4D cines \(x, y, z, t\) \(decided by .*good_4d", None),
    "NaN": (_with_value(np.nan, 2), " has NaN or infinite voxels", 2),
    "infinite": (_with_value(np.inf, 0), " has NaN or infinite voxels", 0),
    "constant frame": (_constant_frame, r" is constant \(7 everywhere\), so it holds no image", 1),
    "unreadable": (lambda p: p.write_bytes(b"not an image at all" * 20), " cannot be read as an image", None),
    "truncated": (_truncated, r" holds fewer bytes than its header promises \(truncated or damaged\)", None),
    "two channels": (lambda p: write_image(np.stack([make_cine(6)] * 2, axis=-1), p, vector=True),
                     " has 2 components per voxel, but the plans take one channel", None),
    "other slice axis": (lambda p: write_image(make_cine(8), p, spacing=(8.0, 1.5, 1.5)),
                         r" has its coarsest spacing \(8 mm\) along array axis 2 \(z, y, x order\), but the plans "
                         r"cut 2D slices along axis 0", None),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_file_is_skipped_with_a_message_naming_it(env, tmp_path, capsys, kind):
    build, message, frame = BAD_FILES[kind]
    _good(tmp_path / "in")
    bad = tmp_path / "in" / "b" / "bad_4d.nii.gz"
    bad.parent.mkdir(parents=True)
    build(bad)
    result = prepare(tmp_path / "in")
    assert len(result.bad) == 1, result.bad
    entry = result.bad[0]
    expected = (f"Frame {frame} of " if frame is not None else "") + str(bad)
    assert entry.file == str(bad) and entry.frame == frame
    assert entry.problem.startswith(expected) and entry.problem.endswith(".") and "\n" not in entry.problem
    assert re.search(message, entry.problem), entry.problem
    assert f"warning: {entry.problem}" in capsys.readouterr().err
    report = json.loads((env["pool"] / REPORT_FILE).read_text())
    assert report["bad_inputs"] == [{"file": str(bad), "frame": frame, "problem": entry.problem}]
    good_frames = {r.frame for r in result.rows if r.subject == "good"}
    bad_frames = {r.frame for r in result.rows if r.subject == "bad"}
    assert good_frames == set(range(FRAMES))
    assert bad_frames == (set() if frame is None else set(range(FRAMES)) - {frame})


def test_cine_in_a_folder_of_frames_and_duplicate_subjects(env, tmp_path):
    write_image(make_cine(1)[0], tmp_path / "in" / "a" / "good_frame01.nii.gz")
    write_image(make_cine(1)[3], tmp_path / "in" / "a" / "good_frame04.nii.gz")
    write_image(make_cine(2), tmp_path / "in" / "b" / "cine_frame01.nii.gz")
    write_image(make_cine(3)[0], tmp_path / "in" / "c" / "good_frame04.nii.gz")
    result = prepare(tmp_path / "in", patterns=["*.nii.gz"])
    assert [b.problem for b in result.bad] == [
        f"{tmp_path / 'in' / 'b' / 'cine_frame01.nii.gz'} is 4D, but this folder holds 3D frames (x, y, z) "
        f"(decided by {tmp_path / 'in' / 'a' / 'good_frame01.nii.gz'}).",
        f"{tmp_path / 'in' / 'c' / 'good_frame04.nii.gz'} gives frame 3 of subject good, as "
        f"{tmp_path / 'in' / 'a' / 'good_frame04.nii.gz'} does."]
    assert sorted({r.case for r in result.rows}) == ["good_t000", "good_t003"]
    forced = prepare(tmp_path / "in", patterns=["*.nii.gz"], kind="4d")
    assert {r.case for r in forced.rows} >= {f"cine_frame01_t{t:03d}" for t in range(FRAMES)}


@pytest.mark.parametrize("case", ["empty folder", "nothing readable", "nothing usable", "no frame usable",
                                  "no raw dataset",
                                  "no plans", "other plans"])
def test_runs_that_cannot_work_stop_with_one_sentence(env, tmp_path, case):
    folder = tmp_path / "in"
    folder.mkdir()
    kwargs = {}
    if case == "empty folder":
        expected = (f"{folder} holds no files matching *_4d.nii.gz or *_sa.nii.gz or *_SA_CINE.nii.gz (use --pattern "
                    f"for other names).")
    elif case == "nothing readable":
        (folder / "x_4d.nii.gz").write_bytes(b"junk" * 50)
        expected = (f"None of the 1 matching files reads as a 3D or 4D image (the first is "
                    f"{folder / 'x_4d.nii.gz'}).")
    elif case == "nothing usable":
        write_image(np.stack([make_cine(6)] * 2, axis=-1), folder / "x_4d.nii.gz", vector=True)
        expected = f"{folder} holds no usable image (1 bad files, 0 excluded and 0 test subjects)."
    elif case == "no frame usable":
        write_image(np.full((3,) + SHAPE, 5, np.int16), folder / "x_4d.nii.gz")
        expected = (f"{folder} holds no frame nnU-Net could preprocess; see "
                    f"{env['pool'] / REPORT_FILE}.")
    elif case == "no raw dataset":
        _good(folder)
        shutil.rmtree(env["nnUNet_raw"] / DATASET)
        expected = (f"The raw dataset {env['nnUNet_raw'] / DATASET} is missing, so its test subjects cannot be "
                    f"kept out; pass --allow-test-subjects if the input holds none.")
    elif case == "no plans":
        _good(folder)
        kwargs["plans_name"] = "nnUNetPlansOther"
        expected = (f"{env['nnUNet_preprocessed'] / DATASET / 'nnUNetPlansOther.json'} is missing; plan and "
                    f"preprocess dataset {DATASET} first (nnUNetv2_plan_and_preprocess or nnunet-ssp plan-cpu).")
    else:
        _good(folder)
        prepare(folder)
        plans_file = env["nnUNet_preprocessed"] / DATASET / f"{PLANS}.json"
        plans = json.loads(plans_file.read_text())
        plans["foreground_intensity_properties_per_channel"]["0"]["mean"] += 1.0
        plans_file.write_text(json.dumps(plans))
        expected = (f"{env['pool']} was prepared with other plans than {PLANS} 2d now has; delete that folder to "
                    f"prepare it again.")
    with pytest.raises(InputError) as error:
        prepare(folder, **kwargs)
    assert str(error.value) == expected


@pytest.mark.parametrize("content,problem", [
    ('{"patient001": ["train"]}', ': the entry of subject patient001 is no object with a "path" (its cine).'),
    ('{"patient006": {"split": "test"}}', ': the entry of subject patient006 is no object with a "path" (its cine).'),
    ("[]", " is no JSON object of subject -> cine entry."),
    ("{broken", " is not valid JSON"),
])
def test_bad_cines_json_of_the_dataset_is_refused(env, tmp_path, content, problem):
    cines_file = env["nnUNet_raw"] / DATASET / "cines.json"
    cines_file.write_text(content)
    _good(tmp_path / "in")
    with pytest.raises(InputError) as error:
        prepare(tmp_path / "in")
    assert str(error.value).startswith(f"{cines_file}{problem}")


@pytest.mark.parametrize("change", ["batch size", "network", "spacing"])
def test_pool_is_kept_unless_the_plans_preprocess_differently(env, tmp_path, change):
    """Plans that differ only in what training uses keep the pool; another target spacing refuses it."""
    _good(tmp_path / "in")
    prepare(tmp_path / "in")
    plans_file = env["nnUNet_preprocessed"] / DATASET / f"{PLANS}.json"
    plans = json.loads(plans_file.read_text())
    configuration = plans["configurations"]["2d"]
    if change == "batch size":
        configuration["batch_size"] += 3
    elif change == "network":
        configuration["architecture"]["arch_kwargs"]["features_per_stage"][0] *= 2
    else:
        configuration["spacing"] = [2 * s for s in configuration["spacing"]]
    plans_file.write_text(json.dumps(plans))
    if change == "spacing":
        with pytest.raises(InputError, match=f"^{re.escape(str(env['pool']))} was prepared with other plans"):
            prepare(tmp_path / "in")
    else:
        again = prepare(tmp_path / "in")
        assert again.prepared == [] and len(again.already_done) == FRAMES


# ---------------------------------------------------------------- real cines
@pytest.mark.skipif(not SUNNYBROOK.is_dir(), reason="shared Sunnybrook cines not present")
def test_sunnybrook_cine_apex_is_where_the_lv_gets_small(env):
    """Geometry puts SCD0000201's apex at its low slice indices, where its LV cavity labels are small."""
    subject = "SCD0000201"
    result = prepare(SUNNYBROOK, exclude=["SCD0000101", "SCD0000301", "SCD0000401", "SCD0000501"],
                     allow_test_subjects=True)
    rows = [r for r in result.rows if r.subject == subject]
    assert len({r.case for r in rows}) == 20 and len(rows) == 20 * 13
    info = json.loads((SUNNYBROOK / subject / "info.json").read_text())
    ed = [r for r in rows if r.frame == info["ED_frame"]]
    positions = np.array([r.position for r in sorted(ed, key=lambda r: r.slice_index)])
    assert (np.diff(positions) < 0).all()  # index 0 is the apex end
    lv = sitk.GetArrayFromImage(sitk.ReadImage(str(SUNNYBROOK / subject / f"{subject}_ED_gt.nii.gz"))) == 3
    labeled = info["labelled_slices"]["ED"]  # the shared data's own key
    area = {i: int(lv[i].sum()) for i in labeled}
    apex_half = [area[i] for i in labeled if positions[i] > 0.5]
    base_half = [area[i] for i in labeled if positions[i] <= 0.5]
    assert np.mean(apex_half) < 0.7 * np.mean(base_half)
    data = load(env["pool"], f"{subject}_t{info['ED_frame']:03d}")[0]
    assert data.shape[1] == 13 and abs(float(data.mean())) < 0.5


def test_phantom_cines_run_base_to_apex_with_slice_index(env, tmp_path):
    """The phantom's geometry says its slices run towards the apex, where its LV labels get small."""
    from nnunet_ssp.phantom import generate_phantom
    generate_phantom(tmp_path / "phantom", 1, seed=3, image_size=48)
    result = prepare(tmp_path / "phantom", allow_test_subjects=True)
    subject = result.rows[0].subject
    cine = tmp_path / "phantom" / subject / f"{subject}_4d.nii.gz"
    assert len({r.case for r in result.rows}) == sitk.ReadImage(str(cine)).GetSize()[3]
    ed = int(read_info_cfg(tmp_path / "phantom" / subject / "Info.cfg")["ED"])
    ed_label = tmp_path / "phantom" / subject / f"{case_id(subject, ed - 1)}_gt.nii.gz"
    lv_area = (sitk.GetArrayFromImage(sitk.ReadImage(str(ed_label))) == 3).sum(axis=(1, 2))
    stack = sorted((r for r in result.rows if r.frame == ed - 1), key=lambda r: r.slice_index)
    assert (np.diff([r.position for r in stack]) > 0).all()
    assert lv_area[-1] < 0.5 * lv_area[0]

