"""convert-acdc and convert-mnms on tiny ACDC- and M&Ms-layout folders, through the real CLI and nnU-Net."""

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ssp.cli import main
from nnunet_ssp.converters import subject_of_case, write_subject_splits
from nnunet_ssp.converters.mnms import PhaseRow, read_phase_table
from nnunet_ssp.converters.subject_splits import draw_test_subjects
from nnunet_ssp.errors import InputError

from helpers import FRAMES, SHAPE, SPACING, Written, cine_and_labels, make_acdc, write_image

# ---------------------------------------------------------------- fixture builders
def make_mnms(folder: Path, names: List[str], ed: int = 0, es: int = 3) -> Tuple[Written, Path]:
    """M&Ms subject folders (4D cine and 4D labels) and the information CSV (0-based ED/ES) in `folder`."""
    written = {}
    csv_file = folder / "info.csv"
    folder.mkdir(parents=True, exist_ok=True)
    with open(csv_file, "w", newline="") as f:
        table = csv.writer(f)
        table.writerow(["External code", "VendorName", "Vendor", "Centre", "ED", "ES"])
        for k, name in enumerate(names):
            sub = folder / name
            sub.mkdir()
            cine, labels = cine_and_labels(10 + k, (ed, es))
            write_image(cine, sub / f"{name}_sa.nii.gz")
            write_image(labels, sub / f"{name}_sa_gt.nii.gz")
            written.update({(name, t + 1): (cine[t], labels[t]) for t in (ed, es)})
            table.writerow([name, "Siemens", "A" if k % 2 else "B", str(k % 3 + 1), ed, es])
    return written, csv_file


def _read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _names(count: int, prefix: str = "patient") -> List[str]:
    return [f"{prefix}{i:03d}" for i in range(1, count + 1)]


@pytest.fixture
def roots(tmp_path, monkeypatch) -> Dict[str, Path]:
    """nnU-Net's three data roots in tmp_path, exported."""
    folders = {name: tmp_path / name for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    for name, folder in folders.items():
        folder.mkdir()
        monkeypatch.setenv(name, str(folder))
    return folders


def _convert(capsys, *argv) -> Tuple[int, str, str]:
    """Run the CLI in-process; return its exit code, stdout and stderr."""
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---------------------------------------------------------------- checks shared by several tests
def _check_folds(dataset: Path, train_cases: List[str]) -> List[dict]:
    folds = json.loads((dataset / "splits_final.json").read_text())
    assert len(folds) == 5
    val_seen = []
    for fold in folds:
        assert sorted(fold["train"] + fold["val"]) == sorted(train_cases)
        assert not {subject_of_case(c) for c in fold["train"]} & {subject_of_case(c) for c in fold["val"]}
        val_seen += fold["val"]
    assert sorted(val_seen) == sorted(train_cases)
    return folds


def _check_cases(folder: Path, cases: List[str], written: Written, labels: bool = True) -> None:
    """Each case's image and label equal what the builder wrote for that subject and frame."""
    assert sorted(p.name for p in folder.glob("*.nii.gz")) == sorted(f"{c}_0000.nii.gz" for c in cases)
    for case in cases:
        key = (subject_of_case(case), int(case[-2:]))
        np.testing.assert_array_equal(_read(folder / f"{case}_0000.nii.gz"), written[key][0])
        if labels:
            np.testing.assert_array_equal(_read(folder.parent / f"labels{folder.name[-2:]}" / f"{case}.nii.gz"),
                                          written[key][1])
    assert sitk.ReadImage(str(folder / f"{cases[0]}_0000.nii.gz")).GetSpacing() == SPACING


# ---------------------------------------------------------------- tests
def test_subject_of_case():
    assert subject_of_case("patient001_frame12") == "patient001"
    assert subject_of_case("A0S9V9_frame01") == "A0S9V9"
    with pytest.raises(ValueError, match="no_marker"):
        subject_of_case("no_marker")


def test_test_draw_is_seeded_and_independent_of_order():
    names = _names(20)
    assert draw_test_subjects(names, 3) == draw_test_subjects(names[::-1], 3)
    assert len(set(draw_test_subjects(names, 3))) == 3


def test_write_subject_splits_refuses_unknown_dataset(roots):
    with pytest.raises(InputError, match="ID 99"):
        write_subject_splits(99)


def test_acdc_flat_folder_with_held_out_subject(tmp_path, roots, capsys):
    names = _names(6)
    written = make_acdc(tmp_path / "acdc", names)
    code, out, err = _convert(capsys, "convert-acdc", "-i", tmp_path / "acdc", "-d", 1, "--test-subjects", 1)
    assert code == 0, err
    assert "Dataset001_ACDC: 10 training cases of 5 subjects, 2 test cases of 1 subjects" in out
    dataset = roots["nnUNet_raw"] / "Dataset001_ACDC"
    cines = json.loads((dataset / "cines.json").read_text())
    test = [s for s, entry in cines.items() if entry["split"] == "test"]
    train = [s for s in names if s not in test]
    assert sorted(cines) == names and len(test) == 1
    assert cines[train[0]] == {"path": str((tmp_path / "acdc" / train[0] / f"{train[0]}_4d.nii.gz").resolve()),
                               "split": "train", "ED": 0, "ES": 3, "frames": FRAMES, "group": "NOR"}
    train_cases = [f"{s}_frame{f:02d}" for s in train for f in (1, 4)]
    _check_cases(dataset / "imagesTr", train_cases, written)
    _check_cases(dataset / "imagesTs", [f"{test[0]}_frame01", f"{test[0]}_frame04"], written)
    meta = json.loads((dataset / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "RV": 1, "MYO": 2, "LV": 3}
    assert meta["channel_names"] == {"0": "cineMRI"}
    assert (meta["numTraining"], meta["numTest"], meta["file_ending"]) == (10, 2, ".nii.gz")
    assert meta["nnunet_ssp"]["source_format"] == "ACDC"
    assert meta["nnunet_ssp"]["source_folder"] == str((tmp_path / "acdc").resolve())
    folds = _check_folds(dataset, train_cases)
    published = roots["nnUNet_preprocessed"] / "Dataset001_ACDC" / "splits_final.json"
    assert json.loads(published.read_text()) == folds


def test_acdc_official_layout_and_unlabeled_test_subject(tmp_path, roots, capsys):
    written = make_acdc(tmp_path / "acdc" / "training", _names(5))
    written.update(make_acdc(tmp_path / "acdc" / "testing", ["patient101"], ed=2, es=5))
    (tmp_path / "acdc" / "testing" / "patient101" / "patient101_frame05_gt.nii.gz").unlink()
    code, _, err = _convert(capsys, "convert-acdc", "-i", tmp_path / "acdc", "-d", 3, "--name", "Heart")
    assert code == 0, err
    dataset = roots["nnUNet_raw"] / "Dataset003_Heart"
    _check_cases(dataset / "imagesTs", ["patient101_frame02", "patient101_frame05"], written, labels=False)
    assert sorted(p.name for p in (dataset / "labelsTs").iterdir()) == ["patient101_frame02.nii.gz"]
    cines = json.loads((dataset / "cines.json").read_text())
    assert [s for s, e in cines.items() if e["split"] == "test"] == ["patient101"]
    assert (cines["patient101"]["ED"], cines["patient101"]["ES"]) == (1, 4)
    _check_folds(dataset, [f"{s}_frame{f:02d}" for s in _names(5) for f in (1, 4)])


def test_acdc_holdout_refused_for_official_layout(tmp_path, roots, capsys):
    make_acdc(tmp_path / "acdc" / "training", _names(5))
    code, _, err = _convert(capsys, "convert-acdc", "-i", tmp_path / "acdc", "-d", 1, "--test-subjects", 1)
    assert code == 2 and str(tmp_path / "acdc") in err and "--test-subjects" in err


def test_mnms_with_test_list(tmp_path, roots, capsys):
    names = ["A1B2C3", "B2C3D4", "C3D4E5", "D4E5F6", "E5F6G7", "F6G7H8"]
    written, csv_file = make_mnms(tmp_path / "mnms", names)
    (tmp_path / "test.txt").write_text("# held out\nC3D4E5\n\n")
    code, _, err = _convert(capsys, "convert-mnms", "-i", tmp_path / "mnms", "--csv", csv_file, "-d", 2,
                         "--test-list", tmp_path / "test.txt")
    assert code == 0, err
    dataset = roots["nnUNet_raw"] / "Dataset002_MNMs"
    train = [n for n in names if n != "C3D4E5"]
    train_cases = [f"{s}_frame{f:02d}" for s in train for f in (1, 4)]
    _check_cases(dataset / "imagesTr", train_cases, written)
    _check_cases(dataset / "imagesTs", ["C3D4E5_frame01", "C3D4E5_frame04"], written)
    meta = json.loads((dataset / "dataset.json").read_text())
    assert list(meta["labels"].items()) == [("background", 0), ("LV", 1), ("MYO", 2), ("RV", 3)]
    cines = json.loads((dataset / "cines.json").read_text())
    assert cines["C3D4E5"]["split"] == "test" and cines["A1B2C3"]["split"] == "train"
    assert cines["A1B2C3"] == {"path": str((tmp_path / "mnms" / "A1B2C3" / "A1B2C3_sa.nii.gz").resolve()),
                               "split": "train", "ED": 0, "ES": 3, "frames": FRAMES, "vendor": "B",
                               "vendor_name": "Siemens", "centre": "1"}
    _check_folds(dataset, train_cases)


def test_mnms_csv_accepts_other_spellings(tmp_path):
    csv_file = tmp_path / "info.csv"
    csv_file.write_text("\ufeffsubject_code,ed,Es,CENTER\nX1,0,7,2\n,,,\n")
    assert read_phase_table(csv_file) == {"X1": PhaseRow(0, 7, {"centre": "2"})}


@pytest.mark.parametrize("content,message", [
    ("ED,ES,Subject\n0,7\n", "line 2 has no subject."),
    ("ED,ES,Subject\n0,7,  \n", "line 2 has no subject."),
    ("Subject,ED,ES\nX1,0,7\n\nX2,1,8\nX1,2,9\n", "line 5 repeats subject X1 of line 2."),
    ("Subject,ED,ES\nX1,0\n", "line 2: ES of subject X1 is '', not a frame index."),
])
def test_mnms_csv_refuses_bad_rows_by_their_line(tmp_path, content, message):
    csv_file = tmp_path / "info.csv"
    csv_file.write_text(content)
    with pytest.raises(InputError) as error:
        read_phase_table(csv_file)
    assert str(error.value) == f"{csv_file} {message}"
    csv_file.write_bytes(b"Subject,ED,ES\n\xff\xfe,0,1\n")
    with pytest.raises(InputError, match=f"^{re.escape(str(csv_file))} cannot be read as a CSV file \\("):
        read_phase_table(csv_file)


def test_plan_and_preprocess_keeps_our_splits(tmp_path, roots, capsys, monkeypatch):
    """ACDC converted with nnUNet_preprocessed set keeps its splits; M&Ms converted without it gets the raw copy."""
    make_acdc(tmp_path / "acdc", _names(5))
    assert _convert(capsys, "convert-acdc", "-i", tmp_path / "acdc", "-d", 1)[0] == 0
    acdc_splits = roots["nnUNet_preprocessed"] / "Dataset001_ACDC" / "splits_final.json"
    before = acdc_splits.read_bytes()
    _, csv_file = make_mnms(tmp_path / "mnms", _names(5, "M"))
    monkeypatch.delenv("nnUNet_preprocessed")
    assert _convert(capsys, "convert-mnms", "-i", tmp_path / "mnms", "--csv", csv_file, "-d", 2)[0] == 0
    mnms_splits = roots["nnUNet_preprocessed"] / "Dataset002_MNMs" / "splits_final.json"
    assert not mnms_splits.exists()

    env = dict(os.environ, **{name: str(folder) for name, folder in roots.items()})
    run = subprocess.run([str(Path(sys.executable).parent / "nnUNetv2_plan_and_preprocess"), "-d", "1", "2",
                          "-c", "2d", "-np", "1", "-npfp", "1"], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert acdc_splits.read_bytes() == before
    raw_mnms = roots["nnUNet_raw"] / "Dataset002_MNMs" / "splits_final.json"
    assert json.loads(mnms_splits.read_text()) == json.loads(raw_mnms.read_text())
    assert len(list((roots["nnUNet_preprocessed"] / "Dataset001_ACDC" / "nnUNetPlans_2d").glob("*.b2nd"))) == 20


def test_write_subject_splits_rewrites_both_files(tmp_path, roots, capsys):
    make_acdc(tmp_path / "acdc", _names(5))
    assert _convert(capsys, "convert-acdc", "-i", tmp_path / "acdc", "-d", 7)[0] == 0
    files = [roots["nnUNet_raw"] / "Dataset007_ACDC" / "splits_final.json",
             roots["nnUNet_preprocessed"] / "Dataset007_ACDC" / "splits_final.json"]
    before = files[0].read_text()
    for f in files:
        f.unlink()
    assert write_subject_splits(7) == files
    assert [f.read_text() for f in files] == [before, before]


def test_existing_dataset_needs_overwrite(tmp_path, roots, capsys):
    make_acdc(tmp_path / "acdc", _names(5))
    args = ["convert-acdc", "-i", tmp_path / "acdc", "-d", 1]
    assert _convert(capsys, *args)[0] == 0
    marker = roots["nnUNet_raw"] / "Dataset001_ACDC" / "imagesTr" / "stale_0000.nii.gz"
    marker.write_text("old")
    code, _, err = _convert(capsys, *args)
    assert code == 2 and str(roots["nnUNet_raw"] / "Dataset001_ACDC") in err and "--overwrite" in err
    assert marker.exists()
    (tmp_path / "acdc" / "patient005" / "Info.cfg").unlink()
    assert _convert(capsys, *args, "--overwrite")[0] == 2
    assert marker.exists()  # a failed overwrite keeps the old dataset
    make_acdc(tmp_path / "acdc2", _names(5))
    assert _convert(capsys, "convert-acdc", "-i", tmp_path / "acdc2", "-d", 1, "--overwrite")[0] == 0
    assert not marker.exists()
    code, _, err = _convert(capsys, *args, "--name", "Other", "--overwrite")
    assert code == 2 and "Dataset001_ACDC" in err
    assert sorted(p.name for p in roots["nnUNet_raw"].iterdir()) == ["Dataset001_ACDC"]


def test_too_few_training_subjects(tmp_path, roots, capsys):
    make_acdc(tmp_path / "acdc", _names(5))
    code, _, err = _convert(capsys, "convert-acdc", "-i", tmp_path / "acdc", "-d", 1, "--test-subjects", 1)
    assert code == 2 and str(tmp_path / "acdc") in err and "4 training subjects" in err
    assert list(roots["nnUNet_raw"].iterdir()) == []


# Each bad input: how to break a valid 5-subject folder, and the file the message must name.
def _break_acdc(tmp_path: Path, how: str) -> Tuple[List[str], Path]:
    folder = tmp_path / "acdc"
    make_acdc(folder, _names(5))
    sub = folder / "patient003"
    args = ["convert-acdc", "-i", folder, "-d", 1]
    if how == "no Info.cfg":
        named = sub / "Info.cfg"
        named.unlink()
    elif how == "Info.cfg without ES":
        named = sub / "Info.cfg"
        named.write_text("ED: 1\nGroup: NOR\n")
    elif how == "label shape differs":
        named = sub / "patient003_frame04_gt.nii.gz"
        write_image(np.zeros((4, 20, 24), np.uint8), named)
    elif how == "3D cine":
        named = sub / "patient003_4d.nii.gz"
        write_image(np.zeros(SHAPE, np.int16), named)
    elif how == "4D frame":
        named = sub / "patient003_frame01.nii.gz"
        write_image(np.zeros((FRAMES,) + SHAPE, np.int16), named)
    elif how == "ES beyond the cine":
        named = sub / "Info.cfg"
        named.write_text(f"ED: 1\nES: {FRAMES + 1}\n")
    elif how == "empty folder":
        folder = tmp_path / "empty"
        folder.mkdir()
        named, args = folder, ["convert-acdc", "-i", folder, "-d", 1]
    elif how == "unknown subject in test list":
        named = tmp_path / "test.txt"
        named.write_text("patient001\npatient999\n")
        args += ["--test-list", named]
    return args, named


def _break_mnms(tmp_path: Path, how: str) -> Tuple[List[str], Path]:
    folder = tmp_path / "mnms"
    _, csv_file = make_mnms(folder, _names(5, "M"))
    sub = folder / "M003"
    if how == "subject missing from CSV":
        named = csv_file
        csv_file.write_text("\n".join(csv_file.read_text().splitlines()[:-1]) + "\n")  # drops M005
    elif how == "ES beyond the cine":
        named = csv_file
        csv_file.write_text(csv_file.read_text().replace(",0,3", f",0,{FRAMES}"))
    elif how == "label shape differs":
        named = sub / "M003_sa_gt.nii.gz"
        write_image(np.zeros((FRAMES, 4, 24, 20), np.uint8), named)
    elif how == "3D cine":
        named = sub / "M003_sa.nii.gz"
        write_image(np.zeros(SHAPE, np.int16), named)
    elif how == "subject twice in CSV":
        named = csv_file
        csv_file.write_text(csv_file.read_text() + "M003,Siemens,A,1,0,2\n")
    elif how == "CSV without ED column":
        named = csv_file
        csv_file.write_text(csv_file.read_text().replace("VendorName,Vendor,Centre,ED", "VendorName,Vendor,Centre,X"))
    return ["convert-mnms", "-i", folder, "--csv", csv_file, "-d", 2], named


@pytest.mark.parametrize("layout,how", [
    ("acdc", "no Info.cfg"), ("acdc", "Info.cfg without ES"), ("acdc", "label shape differs"),
    ("acdc", "3D cine"), ("acdc", "4D frame"), ("acdc", "ES beyond the cine"), ("acdc", "empty folder"),
    ("acdc", "unknown subject in test list"),
    ("mnms", "subject missing from CSV"), ("mnms", "ES beyond the cine"), ("mnms", "label shape differs"),
    ("mnms", "3D cine"), ("mnms", "CSV without ED column"), ("mnms", "subject twice in CSV"),
])
def test_bad_input_names_the_file_and_leaves_nothing(tmp_path, roots, capsys, layout, how):
    args, named = (_break_acdc if layout == "acdc" else _break_mnms)(tmp_path, how)
    code, _, err = _convert(capsys, *args)
    assert code == 2
    message = [line for line in err.splitlines() if line.startswith("nnunet-ssp ")]  # tqdm shares stderr
    assert len(message) == 1 and message[0].count(". ") == 0, err
    assert str(named.resolve()) in message[0], err
    assert list(roots["nnUNet_raw"].iterdir()) == []
    assert list(roots["nnUNet_preprocessed"].iterdir()) == []


# ---------------------------------------------------------------- M&Ms-2, on the phantom written in its layout
MNMS2_SUBJECTS = 6


@pytest.fixture(scope="module")
def mnms2_phantom(tmp_path_factory) -> Path:
    """Six phantom subjects (seed 4, 32 px) in the M&Ms-2 layout, written by `nnunet-ssp synth --layout mnms2`."""
    folder = tmp_path_factory.mktemp("mnms2") / "dataset"
    assert main(["synth", "-o", str(folder), "-n", str(MNMS2_SUBJECTS), "--seed", "4", "--size", "32",
                 "--layout", "mnms2"]) == 0
    return folder


def _copy_mnms2(source: Path, target: Path) -> Tuple[Path, Path]:
    """A copy of the phantom folder to break, and its CSV."""
    import shutil
    shutil.copytree(source, target)
    return target, target / "dataset_information.csv"


def test_mnms2_phantom_converts_with_frames_found_in_the_cine(tmp_path, roots, capsys, mnms2_phantom):
    from nnunet_ssp.phantom import generate_phantom
    from nnunet_ssp.phantom.subject import draw_subject
    from nnunet_ssp.unlabeled.sources import find_images, subject_and_frame

    names = [f"{i:03d}" for i in range(1, MNMS2_SUBJECTS + 1)]
    assert sorted(p.name for p in mnms2_phantom.iterdir()) == names + ["dataset_information.csv"]
    code, out, err = _convert(capsys, "convert-mnms2", "-i", mnms2_phantom, "--csv",
                              mnms2_phantom / "dataset_information.csv", "-d", 4, "--test-subjects", 1)
    assert code == 0, err
    assert "Dataset004_MNMs2: 10 training cases of 5 subjects, 2 test cases of 1 subjects" in out
    assert "skipped" not in out and "warning" not in err
    dataset = roots["nnUNet_raw"] / "Dataset004_MNMs2"
    meta = json.loads((dataset / "dataset.json").read_text())
    assert list(meta["labels"].items()) == [("background", 0), ("LV", 1), ("MYO", 2), ("RV", 3)]
    assert meta["nnunet_ssp"]["source_format"] == "M&Ms-2"
    cines = json.loads((dataset / "cines.json").read_text())
    assert sorted(cines) == names
    generate_phantom(tmp_path / "acdc", MNMS2_SUBJECTS, seed=4, image_size=32, progress=False)
    for k, name in enumerate(names, start=1):
        motion = draw_subject(4, k, 32, None).motion  # the frames the phantom labeled
        entry = cines[name]
        assert (entry["ED"], entry["ES"]) == (motion.ed, motion.es) and motion.ed != motion.es
        assert entry["path"] == str((mnms2_phantom / name / f"{name}_SA_CINE.nii.gz").resolve())
        assert entry["frames"] == motion.n_frames and entry["group"] and entry["vendor_name"]
        suffix = "Tr" if entry["split"] == "train" else "Ts"
        for index in (motion.ed, motion.es):
            case = f"{name}_frame{index + 1:02d}"
            acdc = tmp_path / "acdc" / f"patient{k:03d}" / f"patient{k:03d}_frame{index + 1:02d}"
            np.testing.assert_array_equal(_read(dataset / f"images{suffix}" / f"{case}_0000.nii.gz"),
                                          _read(Path(f"{acdc}.nii.gz")))
            acdc_labels = _read(Path(f"{acdc}_gt.nii.gz"))  # RV 1, MYO 2, LV 3
            np.testing.assert_array_equal(_read(dataset / f"labels{suffix}" / f"{case}.nii.gz"),
                                          np.array([0, 3, 2, 1])[acdc_labels])
            assert (acdc_labels == 3).any() and (acdc_labels == 1).any()
    _check_folds(dataset, [f"{s}_frame{cines[s][p] + 1:02d}" for s in names if cines[s]["split"] == "train"
                           for p in ("ED", "ES")])
    found = find_images(mnms2_phantom)  # what prepare-unlabeled takes by default
    assert [subject_and_frame(p, True) for p in found] == [(n, 0) for n in names]


def test_mnms2_csv_frame_columns_are_used_when_given(tmp_path, roots, capsys, mnms2_phantom):
    folder, csv_file = _copy_mnms2(mnms2_phantom, tmp_path / "dataset")
    cines = {}
    for name in [f"{i:03d}" for i in range(1, MNMS2_SUBJECTS + 1)]:
        movie = _read(folder / name / f"{name}_SA_CINE.nii.gz")
        cines[name] = len(movie)
        # the ED and ES images become other frames of the cine, so only the CSV can say which they are
        for phase, index in (("ED", 1), ("ES", 2)):
            image = sitk.ReadImage(str(folder / name / f"{name}_SA_{phase}.nii.gz"))
            replaced = sitk.GetImageFromArray(movie[index])
            replaced.CopyInformation(image)
            sitk.WriteImage(replaced, str(folder / name / f"{name}_SA_{phase}.nii.gz"))
    lines = csv_file.read_text().splitlines()
    csv_file.write_text("\n".join([lines[0] + ",ED,ES"] + [line + ",1,2" for line in lines[1:]]) + "\n")
    code, _, err = _convert(capsys, "convert-mnms2", "-i", folder, "--csv", csv_file, "-d", 4)
    assert code == 0, err
    entries = json.loads((roots["nnUNet_raw"] / "Dataset004_MNMs2" / "cines.json").read_text())
    assert {(e["ED"], e["ES"]) for e in entries.values()} == {(1, 2)}
    csv_file.write_text("\n".join([lines[0] + ",ED,ES"] + [line + ",1," for line in lines[1:]]) + "\n")
    code, _, err = _convert(capsys, "convert-mnms2", "-i", folder, "--csv", csv_file, "-d", 4, "--overwrite")
    assert code == 2 and f"{csv_file.resolve()} gives only one of ED and ES for subject 001." in err


def _break_mnms2(folder: Path, csv_file: Path, how: str) -> Tuple[str, Path]:
    """Break subject 003 of an M&Ms-2 folder (or add a CSV row of an absent one); the subject and the file the
    warning must name."""
    sub = folder / "003"
    if how == "missing ES file":
        named = sub / "003_SA_ES.nii.gz"
        named.unlink()
        return "003", named
    if how == "missing ES label":  # found only once the ED frame has been read: nothing of 003 may be written
        named = sub / "003_SA_ES_gt.nii.gz"
        named.unlink()
        return "003", named
    if how == "cine on another grid":
        named = sub / "003_SA_CINE.nii.gz"
        cine = sitk.ReadImage(str(named))
        cine.SetSpacing(tuple(s * 1.5 for s in cine.GetSpacing()[:3]) + (1.0,))
        sitk.WriteImage(cine, str(named))
        return "003", sub / "003_SA_ED.nii.gz"
    if how == "ED frame not in the cine":
        named = sub / "003_SA_ED.nii.gz"
        image = sitk.ReadImage(str(named))
        sitk.WriteImage(image + 1, str(named))
        return "003", named
    if how == "CSV names an absent subject":
        with open(csv_file, "a") as f:
            f.write("17,NOR,A\n")
        return "017", csv_file
    raise ValueError(how)


@pytest.mark.parametrize("how", ["missing ES file", "missing ES label", "cine on another grid",
                                 "ED frame not in the cine", "CSV names an absent subject"])
def test_mnms2_bad_subject_is_skipped_with_one_sentence_and_the_rest_converted(tmp_path, roots, capsys,
                                                                               mnms2_phantom, how):
    folder, csv_file = _copy_mnms2(mnms2_phantom, tmp_path / "dataset")
    subject, named = _break_mnms2(folder, csv_file, how)
    code, out, err = _convert(capsys, "convert-mnms2", "-i", folder, "--csv", csv_file, "-d", 4)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: subject {subject} skipped: "), err
    sentence = warnings[0].split(" skipped: ", 1)[1]
    assert str(named.resolve()) in sentence and sentence.count(". ") == 0 and sentence.endswith(".")
    assert out.rstrip().splitlines()[-2:] == ["  skipped 1 subject:", f"    {subject}: {sentence}"]
    dataset = roots["nnUNet_raw"] / "Dataset004_MNMs2"
    converted = sorted(json.loads((dataset / "cines.json").read_text()))
    expected = [f"{i:03d}" for i in range(1, MNMS2_SUBJECTS + 1) if f"{i:03d}" != subject]
    assert converted == expected
    written = {p.name.split("_frame")[0] for p in dataset.rglob("*.nii.gz")}
    assert written == set(expected) and len(list((dataset / "labelsTr").iterdir())) == 2 * len(expected)
    record = json.loads((dataset / "dataset.json").read_text())["nnunet_ssp"]
    assert record["skipped_subjects"] == {subject: sentence}


def test_mnms2_too_few_subjects_left_writes_nothing(tmp_path, roots, capsys, mnms2_phantom):
    folder, csv_file = _copy_mnms2(mnms2_phantom, tmp_path / "dataset")
    for name in ("002", "005"):
        (folder / name / f"{name}_SA_ES_gt.nii.gz").unlink()
    code, _, err = _convert(capsys, "convert-mnms2", "-i", folder, "--csv", csv_file, "-d", 4)
    assert code == 2 and "4 training subjects, too few" in err
    assert err.count("warning: subject") == 2
    assert list(roots["nnUNet_raw"].iterdir()) == [] and list(roots["nnUNet_preprocessed"].iterdir()) == []


def test_synth_refuses_a_preview_of_the_mnms2_layout(tmp_path, capsys):
    code = main(["synth", "-o", str(tmp_path / "x"), "-n", "1", "--layout", "mnms2", "--preview",
                 str(tmp_path / "p.png")])
    assert code == 2 and "--preview draws subjects in the ACDC layout" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
