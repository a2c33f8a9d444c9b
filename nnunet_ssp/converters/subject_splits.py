"""Subject-level data splits: the test hold-out of a flat folder and nnU-Net's five cross-validation folds.

nnU-Net reads its folds from `$nnUNet_preprocessed/<dataset>/splits_final.json`. We keep a copy in the raw dataset
folder too: nnU-Net's experiment planner (`nnUNetv2_plan_and_preprocess`) copies `<raw>/splits_final.json` into the
preprocessed folder when that has none, and otherwise asserts that the first folds agree; it never deletes it.
Writing the five folds again drops the folds `nnunet-ssp make-splits` appended, and its sidecar that describes them.
"""

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Sequence, Union

import numpy as np
from nnunetv2.paths import nnUNet_preprocessed
from nnunetv2.utilities.crossval_split import generate_crossval_split
from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

from nnunet_ssp.atomic import write_json
from nnunet_ssp.converters.cases import subject_of_case
from nnunet_ssp.errors import InputError
from nnunet_ssp.roots import dataset_name_of, preprocessed_dataset_folder, raw_dataset_folder

SPLITS_FILE = "splits_final.json"
SIDECAR_FILE = "splits_ssp.json"  # make-splits' record of which appended fold is which (nnunet_ssp.splits)
N_FOLDS = 5
SPLIT_SEED = 12345  # the seed nnU-Net uses for its own default split

Folds = List[Dict[str, List[str]]]


def draw_test_subjects(subjects: Sequence[str], count: int, seed: int = SPLIT_SEED) -> List[str]:
    """A seeded random draw of `count` subjects (from the sorted names) to hold out for testing."""
    ordered = sorted(subjects)
    picked = np.random.RandomState(seed).choice(len(ordered), size=count, replace=False)
    return sorted(ordered[i] for i in picked)


def subject_folds(case_ids: Iterable[str], n_folds: int = N_FOLDS, seed: int = SPLIT_SEED,
                  subject_of: Callable[[str], str] = subject_of_case) -> Folds:
    """nnU-Net folds (`[{"train": [...], "val": [...]}, ...]`) in which all cases of a subject share one side."""
    cases_of = defaultdict(list)
    for case in sorted(case_ids):
        cases_of[subject_of(case)].append(case)
    if len(cases_of) < n_folds:
        raise ValueError(f"{n_folds} folds need at least {n_folds} subjects, got {len(cases_of)}.")
    return [{part: [case for subject in sorted(fold[part]) for case in cases_of[subject]] for part in ("train", "val")}
            for fold in generate_crossval_split(sorted(cases_of), seed=seed, n_splits=n_folds)]


def publish_splits(folds: Folds, dataset_name: str) -> List[Path]:
    """Write `folds` as `splits_final.json` into the preprocessed folder when nnUNet_preprocessed is set, and record
    the converters' subject rule there.

    Folds appended there by make-splits are dropped with its sidecar, and a warning names them.
    """
    from nnunet_ssp.subjects import SubjectRule, record_subject_rule  # it imports this package's case naming

    if not nnUNet_preprocessed.is_set():
        return []
    folder = preprocessed_dataset_folder(dataset_name)
    appended = _appended_fold_count(folder / SPLITS_FILE)
    (folder / SIDECAR_FILE).unlink(missing_ok=True)
    write_json(folds, folder / SPLITS_FILE)
    record_subject_rule(folder, SubjectRule(), "convert")
    if appended:
        which = f"fold {N_FOLDS}" if appended == 1 else f"folds {N_FOLDS} to {N_FOLDS + appended - 1}"
        print(f"warning: {folder / SPLITS_FILE} held {which} after nnU-Net's five (where make-splits appends its "
              f"folds); they are gone, and so is {SIDECAR_FILE}. Rerun nnunet-ssp make-splits; a benchmark knows its "
              f"finished runs by fold number alone, so if the new folds differ, delete its runs of those folds or use "
              f"a new --out.",
              file=sys.stderr)
    return [folder / SPLITS_FILE]


def _appended_fold_count(splits_file: Path) -> int:
    """How many folds after nnU-Net's five `splits_file` holds (0 when it is missing or no list of folds)."""
    try:
        folds = json.loads(splits_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return 0
    return max(0, len(folds) - N_FOLDS) if isinstance(folds, list) else 0


def write_subject_splits(dataset: Union[int, str]) -> List[Path]:
    """(Re)write the subject-grouped folds of a raw dataset (ID or name) into its raw and preprocessed folders.

    Replaces both `splits_final.json` files with the five folds alone (folds appended by make-splits are dropped,
    see `publish_splits`); returns the files written.
    """
    dataset_name = dataset_name_of(dataset)
    raw_folder = raw_dataset_folder(dataset_name)
    if not (raw_folder / "dataset.json").is_file():
        raise InputError(f"{raw_folder / 'dataset.json'} is missing, so {raw_folder} is no nnU-Net raw dataset.")
    try:
        folds = subject_folds(get_filenames_of_train_images_and_targets(str(raw_folder)))
    except ValueError as e:
        raise InputError(f"{raw_folder / 'imagesTr'}: {e}") from None
    write_json(folds, raw_folder / SPLITS_FILE)
    return [raw_folder / SPLITS_FILE] + publish_splits(folds, dataset_name)
