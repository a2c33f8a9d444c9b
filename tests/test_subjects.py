"""One subject rule per dataset, the pool's test guard by name and by content, pretraining without the validation
subjects, and the audit, on a phantom whose case ids are `<subject>_ED` / `<subject>_ES` (no `_frame`)."""

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from nnunet_ssp.cli import main
from nnunet_ssp.errors import InputError

from helpers import PLANS, session_roots

DATASET_ID, DATASET = 502, "Dataset502_Renamed"
PATTERN = r"^(patient\d+)_E[DS]"


@pytest.fixture(scope="module")
def renamed(phantom_roots, tmp_path_factory):
    """The session's phantom with its cases renamed `<subject>_ED` / `_ES`, without splits or cines.json, planned and
    preprocessed with CPU plans."""
    from nnunet_ssp.cpu_plans import plan_and_preprocess_cpu

    base = tmp_path_factory.mktemp("renamed")
    roots = {name: base / name for name in ("nnUNet_raw", "nnUNet_preprocessed")}
    source = phantom_roots["nnUNet_raw"] / "Dataset501_Phantom"
    target = roots["nnUNet_raw"] / DATASET
    cines = json.loads((source / "cines.json").read_text())
    for folder in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (target / folder).mkdir(parents=True)
        for path in (source / folder).iterdir():
            subject, rest = path.name.split("_frame")
            phase = "ED" if int(rest[:2]) - 1 == cines[subject]["ED"] else "ES"
            shutil.copy(path, target / folder / f"{subject}_{phase}{rest[2:]}")
    shutil.copy(source / "dataset.json", target / "dataset.json")
    with session_roots(roots):
        plan_and_preprocess_cpu(DATASET_ID, num_processes=1)
    phases = {subject: {"ED": entry["ED"], "ES": entry["ES"]} for subject, entry in cines.items()}  # 0-based frames
    return {**roots, "cines": phantom_roots["cines"], "raw": target, "phases": phases,
            "preprocessed": roots["nnUNet_preprocessed"] / DATASET}


@pytest.fixture
def env(renamed, nnunet_env, monkeypatch):
    for name in ("nnUNet_raw", "nnUNet_preprocessed"):
        monkeypatch.setenv(name, str(renamed[name]))
    return {**renamed, "nnUNet_results": nnunet_env["nnUNet_results"]}


def _tree(folder: Path) -> dict:
    return {str(p): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def _test_subjects(raw: Path) -> set:
    return {p.name.split("_")[0] for p in (raw / "imagesTs").iterdir()}


@pytest.mark.parametrize("pattern, message", [
    (None, r"imagesTr: the converters' rule <subject>_frameYY names the subject of none of its 12 cases \(not of "
           r"patient\d+_ED\); name the subjects with --subject-pattern\."),
    (r"^(patient00[1-4])_", r"imagesTr: the subject pattern .* names the subject of \d of its 12 cases \(not of "
                            r"patient00[5-9]_ED\)\."),
    (r"patient\d+", r"The subject pattern 'patient\\\\d\+' has no group, but its first group must capture the "
                    r"subject\."),
])
def test_a_bad_subject_pattern_stops_with_one_sentence_and_writes_nothing(env, capsys, pattern, message):
    before = _tree(env["preprocessed"])
    argv = ["make-splits", "-d", str(DATASET_ID), "--subjects", "1", "--seeds", "0"]
    assert main(argv + (["--subject-pattern", pattern] if pattern else [])) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert re.search(message, err), err
    assert _tree(env["preprocessed"]) == before


def test_make_splits_records_the_pattern_that_every_stage_reads(env):
    from nnunet_ssp.splits import make_splits
    from nnunet_ssp.subjects import dataset_subject_rule

    result = make_splits(DATASET_ID, [1, 2], [0], subject_pattern=PATTERN)
    assert dataset_subject_rule(env["preprocessed"]).pattern == PATTERN
    folds = json.loads((env["preprocessed"] / "splits_final.json").read_text())
    validation = set(result.label_folds[0].validation_subjects)
    pretraining = folds[result.pretraining_fold]
    assert {c.split("_")[0] for c in pretraining["val"]} == validation
    assert not {c.split("_")[0] for c in pretraining["train"]} & validation and len(pretraining["train"]) == 10
    for fold in folds:  # ED and ES of a subject on one side, in nnU-Net's five folds and ours
        assert not {c.split("_")[0] for c in fold["train"]} & {c.split("_")[0] for c in fold["val"]}
    assert make_splits(DATASET_ID, [1, 2], [0]).folds == result.folds  # the recorded rule, without repeating it
    before = _tree(env["preprocessed"])
    with pytest.raises(InputError, match=r"nnunet_ssp.json already names the subjects with the subject pattern .*, "
                                         r"not '\(patient\)'; remove that file"):
        make_splits(DATASET_ID, [1], [0], subject_pattern="(patient)")
    assert _tree(env["preprocessed"]) == before


def test_prepare_unlabeled_on_the_test_images_refuses_every_test_subject(env, capsys):
    from nnunet_ssp.unlabeled import prepare_unlabeled

    before = _tree(env["preprocessed"])
    with pytest.raises(InputError, match=r"imagesTs holds no usable image \(0 bad files, 0 excluded and 2 test "
                                         r"subjects\)\."):
        prepare_unlabeled(DATASET_ID, env["raw"] / "imagesTs", PLANS, num_processes=1, patterns=["*.nii.gz"],
                          kind="3d")
    assert f"Left out 2 test subjects of the dataset ({', '.join(sorted(_test_subjects(env['raw'])))})" in \
        capsys.readouterr().err
    assert _tree(env["preprocessed"]) == before


def test_a_renamed_copy_of_a_test_image_is_refused_by_content(env, tmp_path, capsys):
    from nnunet_ssp.unlabeled import prepare_unlabeled

    test_image = sorted((env["raw"] / "imagesTs").iterdir())[0]
    training_image = sorted((env["raw"] / "imagesTr").iterdir())[0]
    (tmp_path / "in").mkdir()
    shutil.copy(test_image, tmp_path / "in" / "volunteer_0000.nii.gz")
    shutil.copy(training_image, tmp_path / "in" / training_image.name)
    result = prepare_unlabeled(DATASET_ID, tmp_path / "in", PLANS, num_processes=1, patterns=["*.nii.gz"],
                               kind="3d", subject_pattern=r"^([a-z]+\d*)_")
    assert result.refused == ["volunteer"]
    assert {r.subject for r in result.rows} == {training_image.name.split("_")[0]}
    assert f"volunteer_0000.nii.gz equals the test image {test_image}, so its subject is a test subject" in \
        capsys.readouterr().err


def test_a_pool_named_unlike_the_dataset_stops_before_writing(env, tmp_path):
    from nnunet_ssp.unlabeled import prepare_unlabeled

    training_image = sorted((env["raw"] / "imagesTr").iterdir())[0]
    (tmp_path / "in").mkdir()
    shutil.copy(training_image, tmp_path / "in" / "patient999_ED_0000.nii.gz")
    before = _tree(env["preprocessed"])
    subject = training_image.name.split("_")[0]
    with pytest.raises(InputError, match=rf"patient999_ED_0000.nii.gz equals the training case {subject}_ED of subject "
                                         rf"{subject}, but the pool names its subject patient999; name the pool's "
                                         rf"subjects as the dataset does with --subject-pattern\."):
        prepare_unlabeled(DATASET_ID, tmp_path / "in", PLANS, num_processes=1, patterns=["*.nii.gz"], kind="3d")
    with pytest.raises(InputError, match=r"names no subject in this file name \(0 of the 1 input files match\); "
                                         r"pass --subject-pattern"):
        prepare_unlabeled(DATASET_ID, tmp_path / "in", PLANS, num_processes=1, patterns=["*.nii.gz"], kind="3d",
                          subject_pattern=r"^(volunteer\d+)")
    assert _tree(env["preprocessed"]) == before


def test_pretraining_sees_subjects_never_the_validation_ones_and_the_audit_agrees(env, tmp_path, capsys):
    from nnunet_ssp.audit import audit_dataset
    from nnunet_ssp.splits import make_splits
    from nnunet_ssp.unlabeled import prepare_unlabeled
    from nnunet_ssp.unlabeled.manifest import read_manifest
    from nnunetv2.run.run_training import get_trainer_from_args

    splits = make_splits(DATASET_ID, [1, 2], [0], subject_pattern=PATTERN)
    validation = set(splits.label_folds[0].validation_subjects)
    tests = _test_subjects(env["raw"])
    pool = prepare_unlabeled(DATASET_ID, env["cines"], PLANS, num_processes=1, subject_pattern=r"^(patient\d+)_4d")
    assert set(pool.refused) == tests and validation <= {r.subject for r in pool.rows}  # the pool holds them

    trainer = get_trainer_from_args(str(DATASET_ID), "2d", splits.pretraining_fold,
                                    "nnUNetTrainerSSP_MIM_1epochs_2iters", PLANS, device=torch.device("cpu"))
    trainer.run_training()
    # every slice pretraining can draw, and every batch the real loader gives, is of a training subject
    train_subjects = set(trainer.train_slices.subject)
    assert train_subjects and not train_subjects & (validation | tests)
    assert set(trainer.val_slices.subject) == validation
    loader, _ = trainer.get_dataloaders()
    drawn = {s for _ in range(20) for s in next(loader)["subjects"]}
    assert drawn <= train_subjects and not drawn & validation
    pool_rows = read_manifest(Path(trainer.preprocessed_dataset_folder + "_unlabeled"))
    assert {r.subject for r in pool_rows} - validation - tests <= train_subjects

    checkpoint = Path(trainer.output_folder) / "checkpoint_final.pth"
    record = torch.load(checkpoint, weights_only=True, map_location="cpu")["ssp"]["data"]["subjects"]
    assert set(record) == train_subjects and all("_E" not in s for s in record)  # subjects, not cases
    audit = audit_dataset(DATASET_ID, PLANS, [checkpoint])
    assert audit.leaks == [] and audit.stages[f"pretraining fold_{splits.pretraining_fold}/checkpoint_final.pth"]
    assert main(["audit", "-d", str(DATASET_ID), "-p", PLANS, "--checkpoint", str(checkpoint)]) == 0
    assert "no overlap that must not exist." in capsys.readouterr().out

    leaked = tmp_path / "leaked.pth"  # a pretraining that saw a validation subject
    torch.save({"network_weights": {}, "ssp": {"data": {"subjects": sorted(train_subjects | validation)}}}, leaked)
    bare = tmp_path / "bare.pth"
    torch.save({"network_weights": {}}, bare)
    assert main(["audit", "-d", str(DATASET_ID), "-p", PLANS, "--checkpoint", str(leaked), str(bare)]) == 1
    out = capsys.readouterr().out
    assert (f"LEAK: {len(validation)} subjects in both pretraining {tmp_path.name}/leaked.pth and validation "
            f"(shared by make-splits): {', '.join(sorted(validation))}") in out
    assert f"note: {bare} has no ssp record with the subjects it saw, so it is not audited." in out


def test_pretraining_draws_each_frame_of_a_training_subject_once(env):
    """The pool's copies of ED and ES are told by content from the labeled `<subject>_ED/_ES` cases (frame -1), so
    each frame of a training subject is drawn once, ED and ES from the labeled cases; an older pool without that
    record keeps today's rule and says so once."""
    from collections import Counter

    from nnunet_ssp.splits import make_splits
    from nnunet_ssp.unlabeled import MANIFEST_FILE, prepare_unlabeled, read_manifest
    from nnunetv2.run.run_training import get_trainer_from_args

    splits = make_splits(DATASET_ID, [1, 2], [0], subject_pattern=PATTERN)
    pool = prepare_unlabeled(DATASET_ID, env["cines"], PLANS, num_processes=1, subject_pattern=r"^(patient\d+)_4d")
    training_cases = sorted(p.name[:-len("_0000.nii.gz")] for p in (env["raw"] / "imagesTr").iterdir())
    phase_frame = {f"{s}_{phase}": (s, entry[phase]) for s, entry in env["phases"].items() for phase in ("ED", "ES")}
    recorded = {(r.subject, r.frame): r.labeled_case for r in pool.rows if r.labeled_case}
    assert recorded == {phase_frame[case]: case for case in training_cases}

    trainer = get_trainer_from_args(str(DATASET_ID), "2d", splits.pretraining_fold,
                                    "nnUNetTrainerSSP_MIM_1epochs_2iters", PLANS, device=torch.device("cpu"))
    train, _ = trainer.get_slice_tables()
    labeled = train.folders.index(trainer.preprocessed_dataset_folder)
    frame_of = [phase_frame[c] if i == labeled else (s, f)
                for c, s, f, i in zip(train.case, train.subject, train.frame, train.folder_index)]
    slices = Counter(zip(frame_of, train.slice_index))
    assert set(slices.values()) == {1}, [k for k, n in slices.items() if n > 1][:3]
    subjects = set(train.subject)
    pool_frames = {(r.subject, r.frame) for r in pool.rows if r.subject in subjects}
    assert set(frame_of) == pool_frames  # every frame of every training subject, once
    from_labeled = {frame for frame, i in zip(frame_of, train.folder_index) if i == labeled}
    assert from_labeled == {phase_frame[c] for c in set(train.case) & set(training_cases)} and from_labeled
    assert not {frame for frame, i in zip(frame_of, train.folder_index) if i != labeled} & from_labeled

    manifest = pool.folder / MANIFEST_FILE  # as an older prepare-unlabeled wrote it, without labeled_case
    manifest.write_text("".join(line.rsplit(",", 1)[0] + "\n" for line in manifest.read_text().splitlines()))
    assert all(r.labeled_case is None for r in read_manifest(pool.folder))
    logged = []
    trainer.print_to_log_file = lambda *args, **kwargs: logged.append(" ".join(map(str, args)))
    old, _ = trainer.get_slice_tables()
    assert len(old) == len(train) + sum(1 for r in pool.rows if r.labeled_case in set(train.case))
    assert len([m for m in logged if "does not say which pool frames equal labeled cases" in m]) == 1, logged
    again = prepare_unlabeled(DATASET_ID, env["cines"], PLANS, num_processes=1, subject_pattern=r"^(patient\d+)_4d",
                              allow_test_subjects=True, exclude=_test_subjects(env["raw"]))
    assert again.prepared == [] and read_manifest(pool.folder) == pool.rows  # the record, without preprocessing


def test_runs_made_on_fold_all_no_longer_count_except_the_baseline(tmp_path):
    from nnunet_ssp.benchmark import BenchmarkSettings, Layout, plan_runs
    from nnunet_ssp.benchmark.markers import run_identity

    settings = BenchmarkSettings("Dataset001_X", methods=("mim",), subjects=(1,), seeds=(0,))
    layout = Layout(tmp_path, "Dataset001_X", "P")
    old, new = (plan_runs(settings, {(1, 0): 5}, fold) for fold in ("all", 9))
    assert [r.fold for r in new] == [9, 5, 5] and [r.kind for r in new] == ["pretrain", "baseline", "finetune"]
    changed = [run_identity(a, layout) != run_identity(b, layout) for a, b in zip(old, new)]
    assert changed == [True, False, True]
