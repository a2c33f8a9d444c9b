"""make-splits: nested subject-level label-efficiency folds after nnU-Net's five, on tiny converted datasets."""

import json
from pathlib import Path
from typing import List

import pytest
from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

from nnunet_ssp.cli import main
from nnunet_ssp.converters import convert_acdc, subject_of_case, write_subject_splits
from nnunet_ssp.errors import InputError
from nnunet_ssp.spelling import OLD_SPELLING
from nnunet_ssp.splits import SIDECAR_FILE, check_preprocessed, fold_index, make_splits, plan_label_folds
from nnunet_ssp.unlabeled import prepare_unlabeled

from helpers import in_old_spelling, make_acdc

NAME = "Dataset001_ACDC"


@pytest.fixture
def acdc12(tmp_path, nnunet_env) -> Path:
    """A converted 12-subject ACDC dataset (ID 1); returns its preprocessed folder holding the five folds."""
    make_acdc(tmp_path / "acdc", [f"patient{i:03d}" for i in range(1, 13)])
    convert_acdc(tmp_path / "acdc", 1)
    return nnunet_env["nnUNet_preprocessed"] / NAME


def _folds(folder: Path) -> List[dict]:
    return json.loads((folder / "splits_final.json").read_text())


def _subjects(cases: List[str]) -> set:
    return {subject_of_case(c) for c in cases}


def _raw_dataset(raw_root: Path, name: str, cases: List[str]) -> None:
    """A raw dataset whose imagesTr holds (empty) files of `cases`; enough for everything that only lists cases."""
    folder = raw_root / name
    (folder / "imagesTr").mkdir(parents=True)
    for case in cases:
        (folder / "imagesTr" / f"{case}_0000.nii.gz").write_bytes(b"")
    generate_dataset_json(str(folder), {0: "cineMRI"}, {"background": 0, "LV": 1}, len(cases), ".nii.gz")


# ---------------------------------------------------------------- properties
def test_folds_are_subject_level_nested_and_disjoint_from_one_validation_set(acdc12):
    five = _folds(acdc12)
    result = make_splits(1, [5, 1, 2], [0, 1])
    folds = _folds(acdc12)
    assert folds[:5] == five and len(folds) == 12 and result.appended == 7
    assert result.folds == {(1, 0): 5, (2, 0): 6, (5, 0): 7, (1, 1): 8, (2, 1): 9, (5, 1): 10}
    validation = set(folds[5]["val"])
    # the pretraining fold: every subject but the shared validation subjects trains, they validate
    assert result.pretraining_fold == 11 and set(folds[11]["val"]) == validation
    assert set(folds[11]["train"]) == {c for f in five[:1] for c in f["train"] + f["val"]} - validation
    assert len(_subjects(folds[5]["val"])) == 2  # 20 % of 12 subjects
    for (size, seed), index in result.folds.items():
        train, val = folds[index]["train"], folds[index]["val"]
        assert set(val) == validation
        assert len(_subjects(train)) == size and len(train) == 2 * size  # ED and ES of each subject
        assert not _subjects(train) & _subjects(val)
        assert fold_index(1, size, seed) == index
    for seed in (0, 1):
        sets = [set(folds[result.folds[size, seed]]["train"]) for size in (1, 2, 5)]
        assert sets[0] < sets[1] < sets[2]
    assert folds[7]["train"] != folds[10]["train"]  # another seed, another draw
    assert folds[5] == folds[8]  # both seeds drew the same single subject, yet each (size, seed) has its own fold

    sidecar = json.loads((acdc12 / SIDECAR_FILE).read_text())
    assert sidecar["splits_file"] == "splits_final.json"
    assert [e["fold"] for e in sidecar["folds"]] == list(range(5, 11))
    entry = sidecar["folds"][2]
    assert entry == {"fold": 7, "labeled_subjects": 5, "seed": 0, "subjects": sorted(_subjects(folds[7]["train"])),
                     "validation_subjects": sorted(_subjects(folds[7]["val"])), "subject_pattern": None}


def test_rerun_is_idempotent_and_later_sizes_join_the_same_nested_draw(acdc12):
    make_splits(1, [1, 5], [0])
    splits, sidecar = acdc12 / "splits_final.json", acdc12 / SIDECAR_FILE
    before = (splits.read_bytes(), splits.stat().st_mtime_ns, sidecar.read_bytes(), sidecar.stat().st_mtime_ns)
    again = make_splits(1, [5, 1], [0, 0])
    assert again.appended == 0 and again.folds == {(1, 0): 5, (5, 0): 6}
    assert (splits.read_bytes(), splits.stat().st_mtime_ns, sidecar.read_bytes(),
            sidecar.stat().st_mtime_ns) == before
    later = make_splits(1, [2], [0])
    folds = _folds(acdc12)
    assert later.folds == {(2, 0): 8} and len(folds) == 9 and later.pretraining_fold == again.pretraining_fold == 7
    assert set(folds[5]["train"]) < set(folds[8]["train"]) < set(folds[6]["train"])
    assert [e["fold"] for e in json.loads(sidecar.read_text())["folds"]] == [5, 6, 8]


def test_splits_are_deterministic_across_fresh_datasets(tmp_path, monkeypatch):
    written = []
    for run in ("a", "b"):
        for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
            (tmp_path / run / name).mkdir(parents=True)
            monkeypatch.setenv(name, str(tmp_path / run / name))
        make_acdc(tmp_path / run / "acdc", [f"patient{i:03d}" for i in range(1, 9)])
        convert_acdc(tmp_path / run / "acdc", 1)
        make_splits(1, [1, 3], [0, 2], val_subjects=3)
        folder = tmp_path / run / "nnUNet_preprocessed" / NAME
        written.append(((folder / "splits_final.json").read_text(), (folder / SIDECAR_FILE).read_text()))
    assert written[0] == written[1]
    assert len(_subjects(json.loads(written[0][0])[5]["val"])) == 3


def test_another_validation_count_appends_new_folds_and_keeps_the_old(acdc12):
    make_splits(1, [1], [0])
    result = make_splits(1, [1], [0], val_subjects=4)
    folds = _folds(acdc12)
    assert result.folds == {(1, 0): 7} and len(folds) == 9
    assert len(_subjects(folds[7]["val"])) == 4 and len(_subjects(folds[5]["val"])) == 2
    assert [e["fold"] for e in json.loads((acdc12 / SIDECAR_FILE).read_text())["folds"]] == [5, 7]
    assert fold_index(1, 1, 0) == 5 and fold_index(1, 1, 0, val_subjects=4) == 7


def test_missing_splits_file_gets_the_raw_five_folds_first(acdc12, nnunet_env):
    raw_five = json.loads((nnunet_env["nnUNet_raw"] / NAME / "splits_final.json").read_text())
    (acdc12 / "splits_final.json").unlink()
    make_splits(1, [1], [0])
    assert _folds(acdc12)[:5] == raw_five and len(_folds(acdc12)) == 7


def test_subject_pattern_groups_other_case_names(nnunet_env):
    cases = [f"sub{i:02d}_{phase}" for i in range(1, 8) for phase in ("ed", "es")]
    _raw_dataset(nnunet_env["nnUNet_raw"], "Dataset004_Other", cases)
    with pytest.raises(InputError, match="imagesTr: the converters' rule .* names the subject of none of its 14 "
                                         "cases .*--subject-pattern"):
        make_splits(4, [2], [0])
    result = make_splits(4, [1, 3], [0], subject_pattern=r"^(sub\d+)_")
    folds = _folds(nnunet_env["nnUNet_preprocessed"] / "Dataset004_Other")
    assert len(folds) == 8 and result.appended == 3
    for fold in folds:  # nnU-Net's five folds and ours keep each subject's ED and ES together
        for part in ("train", "val"):
            subjects = {c.split("_")[0] for c in fold[part]}
            assert sorted(fold[part]) == sorted(f"{s}_{p}" for s in subjects for p in ("ed", "es"))
    assert len(folds[6]["train"]) == 6 and len(folds[5]["val"]) == 2


def test_plans_check_passes_for_preprocessed_cases(acdc12):
    architecture = {"network_class_name": "PlainConvUNet", "arch_kwargs": {}, "_kw_requires_import": []}
    plans = {"plans_name": "P", "configurations": {"2d": {"data_identifier": "P_2d", "architecture": architecture}}}
    (acdc12 / "P.json").write_text(json.dumps(plans))
    (acdc12 / "P_2d").mkdir()
    folds = _folds(acdc12)
    for case in folds[0]["train"][:-1]:
        for ending in (".b2nd", "_seg.b2nd", ".pkl"):
            (acdc12 / "P_2d" / f"{case}{ending}").write_bytes(b"")
    with pytest.raises(InputError, match=r"P_2d lacks the preprocessed cases .* and \d+ more"):
        make_splits(1, [1], [0], plans="P")
    for case in folds[0]["val"] + folds[0]["train"][-1:]:
        for ending in (".b2nd", "_seg.b2nd"):  # as an interrupted preprocessing leaves the last cases: no .pkl yet
            (acdc12 / "P_2d" / f"{case}{ending}").write_bytes(b"")
    unfinished = sorted(folds[0]["val"] + folds[0]["train"][-1:])
    with pytest.raises(InputError, match=f"P_2d lacks the preprocessed cases {', '.join(unfinished[:3])} and "):
        check_preprocessed(1, "P")
    for case in folds[0]["val"] + folds[0]["train"][-1:]:
        (acdc12 / "P_2d" / f"{case}.pkl").write_bytes(b"")
    check_preprocessed(1, "P")
    assert make_splits(1, [1], [0], plans="P").appended == 2


def test_unreadable_plans_or_plans_without_the_configuration_stop_before_the_splits_change(acdc12, capsys):
    splits = (acdc12 / "splits_final.json").read_bytes()
    plans_file = acdc12 / "P.json"
    for content, sentence in [("{not json", f"{plans_file} is not a readable plans file (JSONDecodeError)."),
                              (json.dumps({"configurations": {"3d_fullres": {}}}),
                               f"{plans_file} has no configuration '2d' (it has 3d_fullres).")]:
        plans_file.write_text(content)
        with pytest.raises(InputError) as refused:
            make_splits(1, [1], [0], plans="P")
        assert str(refused.value) == sentence
        assert (acdc12 / "splits_final.json").read_bytes() == splits and not (acdc12 / SIDECAR_FILE).exists()
    _expect_refusal(capsys, ["make-splits", "-d", "1", "-p", "P", "-c", "2d_other"],
                    f"{plans_file} has no configuration '2d_other' (it has 3d_fullres).")


def test_converting_again_drops_appended_folds_and_their_sidecar_with_a_warning(acdc12, tmp_path, capsys):
    make_splits(1, [1, 2], [0])
    assert len(_folds(acdc12)) == 8 and (acdc12 / SIDECAR_FILE).is_file()
    capsys.readouterr()
    assert main(["convert-acdc", "-i", str(tmp_path / "acdc"), "-d", "1", "--overwrite"]) == 0
    assert len(_folds(acdc12)) == 5 and not (acdc12 / SIDECAR_FILE).exists()
    err = capsys.readouterr().err
    assert (f"warning: {acdc12 / 'splits_final.json'} held folds 5 to 7 after nnU-Net's five (where make-splits "
            f"appends its folds); they are gone, and so is {SIDECAR_FILE}. Rerun nnunet-ssp make-splits;") in err
    make_splits(1, [1], [0])
    write_subject_splits(1)
    assert len(_folds(acdc12)) == 5 and not (acdc12 / SIDECAR_FILE).exists()
    assert "held folds 5 to 6 after nnU-Net's five" in capsys.readouterr().err
    write_subject_splits(1)  # nothing appended: no warning
    assert "warning" not in capsys.readouterr().err


def test_plan_label_folds_alone():
    cases_of = {f"s{i}": [f"s{i}_a", f"s{i}_b"] for i in range(6)}
    folds = plan_label_folds(cases_of, [1, 4], [7])
    assert [f.labeled_subjects for f in folds] == [1, 4]
    assert set(folds[0].subjects) < set(folds[1].subjects)
    assert len(folds[0].validation_subjects) == 1 and not set(folds[1].subjects) & set(folds[1].validation_subjects)
    assert folds[1].train == tuple(c for s in folds[1].subjects for c in cases_of[s])


# ---------------------------------------------------------------- refusals
def _expect_refusal(capsys, argv: List[str], *fragments: str) -> None:
    """The CLI stops with exit code 2 and one sentence that holds each fragment."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nnunet-ssp make-splits: error: ") and "\n" not in err, err
    assert err.count(". ") == 0 and err.endswith("."), err
    for fragment in fragments:
        assert fragment in err, err


@pytest.mark.parametrize("extra,fragments", [
    (["--subjects", "11"], ["imagesTr", "11 labeled subjects are more than the 10 subjects outside the 2 validation"]),
    (["--subjects", "0", "1"], ["imagesTr", "labeled subject count of 0 is below 1"]),
    (["--val-subjects", "12"], ["imagesTr", "12 validation subjects must be at least 1 and fewer than the 12"]),
    (["--val-subjects", "0"], ["imagesTr", "0 validation subjects must be at least 1"]),
    (["--seeds", "-1"], ["imagesTr", "seed -1 is negative"]),
    (["--subject-pattern", "(unclosed"], ["'(unclosed' is no valid regular expression"]),
    (["--subject-pattern", "patient"], ["'patient' has no group"]),
    (["--subject-pattern", r"^(x\d+)"], ["nnunet_ssp.json already names the subjects with the converters' rule"]),
    (["-p", "nnUNetPlans"], ["nnUNetPlans.json is missing"]),
])
def test_impossible_requests_are_refused_and_change_nothing(acdc12, capsys, extra, fragments):
    before = (acdc12 / "splits_final.json").read_bytes()
    _expect_refusal(capsys, ["make-splits", "-d", "1", "--subjects", "1", *extra], *fragments)
    assert (acdc12 / "splits_final.json").read_bytes() == before
    assert not (acdc12 / SIDECAR_FILE).exists()


@pytest.mark.parametrize("content,fragment", [
    ("{not json", "cannot be read as JSON"),
    ('{"train": []}', "is no nnU-Net splits file"),
    ('[{"train": ["a"], "val": [1]}] ', "is no nnU-Net splits file"),
    (json.dumps([{"train": ["a"], "val": ["b"]}] * 3), "holds 3 folds, fewer than nnU-Net's 5"),
])
def test_malformed_splits_file_is_refused_and_kept(acdc12, capsys, content, fragment):
    splits = acdc12 / "splits_final.json"
    splits.write_text(content)
    _expect_refusal(capsys, ["make-splits", "-d", "1"], str(splits), fragment)
    assert splits.read_text() == content


def test_malformed_sidecar_is_refused(acdc12, capsys):
    (acdc12 / SIDECAR_FILE).write_text("[]")
    _expect_refusal(capsys, ["make-splits", "-d", "1"], str(acdc12 / SIDECAR_FILE), "is no nnunet-ssp splits sidecar")


def test_a_sidecar_written_in_the_older_spelling_still_reads(acdc12):
    first = make_splits(1, [1, 2], [0])
    sidecar = acdc12 / SIDECAR_FILE
    sidecar.write_text(json.dumps(in_old_spelling(json.loads(sidecar.read_text()))))
    assert f'"{OLD_SPELLING}_subjects"' in sidecar.read_text()
    assert fold_index(1, 2, 0) == first.folds[2, 0]
    again = make_splits(1, [1, 2], [0])
    assert again.appended == 0 and again.folds == first.folds


def test_empty_dataset_and_unknown_dataset_are_refused(nnunet_env, capsys):
    _raw_dataset(nnunet_env["nnUNet_raw"], "Dataset005_Empty", [])
    images = nnunet_env["nnUNet_raw"] / "Dataset005_Empty" / "imagesTr"
    _expect_refusal(capsys, ["make-splits", "-d", "5"], str(images), "there are no training cases")
    _expect_refusal(capsys, ["make-splits", "-d", "77"], "No nnU-Net dataset with ID 77")


@pytest.mark.parametrize("unset", ["nnUNet_raw", "nnUNet_preprocessed"])
def test_unset_data_roots_are_refused_with_their_name(acdc12, monkeypatch, tmp_path, unset):
    monkeypatch.delenv(unset)
    expected = f"The environment variable {unset} is not set; export it (see `nnunet-ssp env`)."
    with pytest.raises(InputError) as error:
        make_splits(NAME, [1], [0])
    assert str(error.value) == expected
    if unset == "nnUNet_preprocessed":  # the unlabeled pool finds the dataset's plans through the same root
        with pytest.raises(InputError) as error:
            prepare_unlabeled(NAME, tmp_path)
        assert str(error.value) == expected


def test_fold_index_before_make_splits_is_refused(acdc12):
    with pytest.raises(InputError, match="has no fold of 2 labeled subjects for seed 1 .*make-splits"):
        fold_index(1, 2, 1)


def test_cli_prints_the_folds(acdc12, capsys):
    assert main(["make-splits", "-d", "1", "--subjects", "1", "2", "--seeds", "3"]) == 0
    out = capsys.readouterr().out
    assert "2 validation subjects shared by all folds" in out and "3 folds appended to" in out
    assert "fold   6:   2 labeled subjects, seed 3:" in out
