"""Label-efficiency splits: nested subject-level training subsets that share one validation set, appended as extra
folds after nnU-Net's five in `$nnUNet_preprocessed/DatasetXXX/splits_final.json`, and one pretraining fold.

The subject of a case follows the dataset's subject rule (`nnunet_ssp.subjects`: everything before `_frame`, the
converters' rule, or the first group of a regular expression recorded with `--subject-pattern`), so a subject's ED
and ES always sit on the same side. One fixed set of validation subjects is drawn from the sorted subjects with
nnU-Net's split seed (12345), whatever the seeds asked for. For each seed the remaining subjects are put in a seeded
random order and `n` labeled subjects are the first `n` of it, so for one seed the subsets are nested
(1 ⊂ 2 ⊂ 5 ⊂ 10) and a size asked for later gives the same subjects as if it had been asked for at once. The
pretraining fold trains on every subject but the validation subjects and validates on those, so a pretraining on it
never sees the subjects the fine-tunings are validated on.

Appended folds are found again by their content, so re-running with the same arguments appends nothing. The
sidecar `splits_ssp.json` beside the splits file says which appended fold is which:

    {"splits_file": "splits_final.json",
     "folds": [{"fold": 5, "labeled_subjects": 1, "seed": 0, "subjects": ["patient007"],
                "validation_subjects": ["patient002"], "subject_pattern": null}, ...],
     "pretraining_fold": {"fold": 9, "subjects": [...], "validation_subjects": ["patient002"]}}
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple, Union

import numpy as np
from nnunetv2.utilities.utils import get_identifiers_from_splitted_dataset_folder

from nnunet_ssp.atomic import write_json
from nnunet_ssp.converters.subject_splits import (N_FOLDS, SIDECAR_FILE, SPLITS_FILE, draw_test_subjects,
                                                  subject_folds)
from nnunet_ssp.errors import InputError
from nnunet_ssp.roots import dataset_name_of, dataset_plans, preprocessed_dataset_folder, raw_dataset_folder
from nnunet_ssp.spelling import respelled_keys
from nnunet_ssp.subjects import RULE_FILE, SubjectRule, record_subject_rule, settled_subject_rule

VALIDATION_FRACTION = 0.2
CONFIGURATION = "2d"

Split = Dict[str, List[str]]


@dataclass(frozen=True)
class LabelFold:
    """The fold of `labeled_subjects` subjects drawn with `seed`, validated on the shared validation subjects."""
    labeled_subjects: int
    seed: int
    subjects: Tuple[str, ...]
    validation_subjects: Tuple[str, ...]
    train: Tuple[str, ...]
    val: Tuple[str, ...]

    def split(self) -> Split:
        """The fold as nnU-Net stores it."""
        return {"train": list(self.train), "val": list(self.val)}

    def matches(self, split: Split) -> bool:
        """Whether an nnU-Net fold holds exactly this fold's training and validation cases."""
        return set(split["train"]) == set(self.train) and set(split["val"]) == set(self.val)


@dataclass(frozen=True)
class SplitsResult:
    """What make_splits found or appended."""
    dataset_name: str
    splits_file: Path
    sidecar_file: Path
    folds: Dict[Tuple[int, int], int]  # (labeled subjects, seed) -> fold index
    label_folds: List[LabelFold]
    appended: int
    pretraining_fold: int  # trains on every subject but the validation subjects

    def summary(self) -> str:
        """A few readable lines for the command line."""
        validation = self.label_folds[0].validation_subjects
        lines = [f"{self.dataset_name}: {len(validation)} validation subjects shared by all folds: "
                 f"{', '.join(validation)}",
                 f"  {self.appended} folds appended to {self.splits_file} "
                 f"({len(self.folds) - self.appended} were there already); sidecar {self.sidecar_file}",
                 f"  fold {self.pretraining_fold:3d}: pretraining, every subject but the validation subjects"]
        for fold in self.label_folds:
            lines.append(f"  fold {self.folds[fold.labeled_subjects, fold.seed]:3d}: {fold.labeled_subjects:3d} "
                         f"labeled subjects, seed {fold.seed}: {', '.join(fold.subjects)}")
        return "\n".join(lines)


@dataclass(frozen=True)
class _Dataset:
    """A raw dataset's training cases grouped by subject by its rule, and where its splits live."""
    name: str
    images: Path
    cases_of: Dict[str, List[str]]
    splits_file: Path
    rule: SubjectRule


def default_validation_count(n_subjects: int) -> int:
    """The default number of validation subjects: 20 % of the subjects, at least 1."""
    return max(1, round(VALIDATION_FRACTION * n_subjects))


def plan_label_folds(cases_of: Dict[str, Sequence[str]], sizes: Sequence[int], seeds: Sequence[int],
                     n_validation: Optional[int] = None) -> List[LabelFold]:
    """The fold of every (size, seed), seeds in the given order, sizes ascending; ValueError if one is impossible."""
    subjects = sorted(cases_of)
    if not subjects:
        raise ValueError("there are no training cases")
    if not sizes or not seeds:
        raise ValueError("at least one labeled subject count and one seed are needed")
    if n_validation is None:
        n_validation = default_validation_count(len(subjects))
    if not 1 <= n_validation < len(subjects):
        raise ValueError(f"{n_validation} validation subjects must be at least 1 and fewer than the "
                         f"{len(subjects)} subjects")
    if min(sizes) < 1:
        raise ValueError(f"a labeled subject count of {min(sizes)} is below 1")
    if min(seeds) < 0:
        raise ValueError(f"seed {min(seeds)} is negative")
    # The same seeded draw the converters use for a test hold-out, here for the validation subjects.
    validation = draw_test_subjects(subjects, n_validation)
    pool = [s for s in subjects if s not in validation]
    if max(sizes) > len(pool):
        raise ValueError(f"{max(sizes)} labeled subjects are more than the {len(pool)} subjects outside the "
                         f"{n_validation} validation subjects")
    val_cases = tuple(case for s in validation for case in cases_of[s])
    folds = []
    for seed in dict.fromkeys(seeds):
        order = [pool[i] for i in np.random.RandomState(seed).permutation(len(pool))]
        for size in sorted(set(sizes)):
            chosen = sorted(order[:size])
            folds.append(LabelFold(size, seed, tuple(chosen), tuple(validation),
                                   tuple(case for s in chosen for case in cases_of[s]), val_cases))
    return folds


def pretraining_split(cases_of: Dict[str, Sequence[str]], validation_subjects: Sequence[str]) -> Split:
    """The pretraining fold: every case of the subjects outside `validation_subjects` trains, theirs validate."""
    held_out = set(validation_subjects)
    return {"train": [c for s in sorted(cases_of) if s not in held_out for c in cases_of[s]],
            "val": [c for s in sorted(held_out) for c in cases_of[s]]}


def read_splits(path: Path) -> List[Split]:
    """nnU-Net's folds in `path`, refused unless it is a list of at least five `{"train", "val"}` folds."""
    try:
        folds = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path} cannot be read as JSON ({e}).") from None
    if not isinstance(folds, list) or not all(_is_split(f) for f in folds):
        raise InputError(f'{path} is no nnU-Net splits file, which is a list of {{"train": [...], "val": [...]}} '
                         f'folds.')
    if len(folds) < N_FOLDS:
        raise InputError(f"{path} holds {len(folds)} folds, fewer than nnU-Net's {N_FOLDS}, so appended folds would "
                         f"take the places of nnU-Net's.")
    return folds


def make_splits(dataset: Union[int, str], sizes: Sequence[int], seeds: Sequence[int],
                val_subjects: Optional[int] = None, subject_pattern: Optional[str] = None,
                plans: Optional[str] = None, configuration: str = CONFIGURATION) -> SplitsResult:
    """Append the label-efficiency folds of every (size, seed) to the dataset's splits_final.json (see module doc).

    With `plans`, every training case must be preprocessed for `configuration` (2d) of those plans.
    """
    data = _load_dataset(dataset, subject_pattern)
    label_folds = _plan(data, sizes, seeds, val_subjects)
    if plans is not None:
        _check_preprocessed(data, plans, configuration)
    folds = _nnunet_folds(data)
    sidecar = data.splits_file.parent / SIDECAR_FILE
    described = _read_sidecar(sidecar)
    n_before = len(folds)
    indices = {}
    for fold in label_folds:
        index = _find_fold(folds, fold, described, set(indices.values()))
        if index is None:
            folds.append(fold.split())
            index = len(folds) - 1
        indices[fold.labeled_subjects, fold.seed] = index
    validation = label_folds[0].validation_subjects
    pretraining = _find_content(folds, pretraining_split(data.cases_of, validation))
    if len(folds) > n_before or not data.splits_file.is_file():
        write_json(folds, data.splits_file)
    if not (data.splits_file.parent / RULE_FILE).is_file():
        record_subject_rule(data.splits_file.parent, data.rule, "make-splits")
    entries = {i: e for i, e in described.items() if i < len(folds)}
    entries.update({indices[f.labeled_subjects, f.seed]: _sidecar_entry(indices[f.labeled_subjects, f.seed], f,
                                                                        data.rule) for f in label_folds})
    content = {"splits_file": SPLITS_FILE, "folds": [entries[i] for i in sorted(entries)],
               "pretraining_fold": {"fold": pretraining, "validation_subjects": list(validation),
                                    "subjects": sorted(s for s in data.cases_of if s not in validation)}}
    if not sidecar.is_file() or content != _read_json(sidecar):
        write_json(content, sidecar)
    return SplitsResult(data.name, data.splits_file, sidecar, indices, label_folds, len(folds) - n_before,
                        pretraining)


def fold_index(dataset: Union[int, str], labeled_subjects: int, seed: int, val_subjects: Optional[int] = None,
               subject_pattern: Optional[str] = None) -> int:
    """The index in splits_final.json of the fold make_splits appended for (labeled_subjects, seed)."""
    data = _load_dataset(dataset, subject_pattern)
    fold = _plan(data, [labeled_subjects], [seed], val_subjects)[0]
    if not data.splits_file.is_file():
        raise InputError(f"{data.splits_file} is missing; run nnunet-ssp make-splits first.")
    described = _read_sidecar(data.splits_file.parent / SIDECAR_FILE)
    index = _find_fold(read_splits(data.splits_file), fold, described, set())
    if index is None or index not in described:
        raise InputError(f"{data.splits_file} has no fold of {labeled_subjects} labeled subjects for seed {seed} "
                         f"with these arguments; run nnunet-ssp make-splits with them first.")
    return index


def check_preprocessed(dataset: Union[int, str], plans: str, subject_pattern: Optional[str] = None) -> None:
    """Refuse (InputError) unless every training case of `dataset` is preprocessed for the 2d configuration of
    `plans`, as nnU-Net's trainers will read it."""
    _check_preprocessed(_load_dataset(dataset, subject_pattern), plans)


def sidecar_validation_subjects(preprocessed_dataset_folder: Path) -> List[str]:
    """The validation subjects shared by make-splits' folds, as its sidecar names them ([] without a sidecar)."""
    described = _read_sidecar(Path(preprocessed_dataset_folder) / SIDECAR_FILE)
    return sorted({s for entry in described.values() for s in entry.get("validation_subjects", [])})


def _is_split(fold) -> bool:
    return (isinstance(fold, dict) and all(isinstance(fold.get(k), list) for k in ("train", "val"))
            and all(isinstance(case, str) for k in ("train", "val") for case in fold[k]))


def _load_dataset(dataset: Union[int, str], subject_pattern: Optional[str]) -> _Dataset:
    name = dataset_name_of(dataset)
    rule = settled_subject_rule(preprocessed_dataset_folder(name), subject_pattern)
    raw = raw_dataset_folder(name)
    images = raw / "imagesTr"
    dataset_json = raw / "dataset.json"
    if not dataset_json.is_file():
        raise InputError(f"{dataset_json} is missing, so {raw} is no nnU-Net raw dataset.")
    try:
        meta = json.loads(dataset_json.read_text())
        if "dataset" not in meta and not images.is_dir():
            raise InputError(f"{images} is missing, so {raw} has no training cases.")
        # nnU-Net's two ways of listing training cases (its own lister also collects every file with a pool)
        cases = (list(meta["dataset"]) if "dataset" in meta
                 else get_identifiers_from_splitted_dataset_folder(str(images), meta["file_ending"]))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as e:
        raise InputError(f"{dataset_json} is no valid nnU-Net dataset.json ({type(e).__name__}: {e}).") from None
    cases_of = rule.group(cases, images)
    tests = raw / "imagesTs"
    if tests.is_dir():  # the test guard names test subjects by the same rule
        rule.group(get_identifiers_from_splitted_dataset_folder(str(tests), meta["file_ending"]), tests)
    return _Dataset(name, images, cases_of, preprocessed_dataset_folder(name) / SPLITS_FILE, rule)


def _plan(data: _Dataset, sizes: Sequence[int], seeds: Sequence[int], val_subjects: Optional[int]) -> List[LabelFold]:
    try:
        return plan_label_folds(data.cases_of, sizes, seeds, val_subjects)
    except ValueError as e:
        raise InputError(f"{data.images}: {e}.") from None


def _check_preprocessed(data: _Dataset, plans: str, configuration: str = CONFIGURATION) -> None:
    """Refuse when a training case is missing from the `configuration` data of `plans`, which nnU-Net's trainers
    will read.

    A case counts once its properties (`.pkl`) are there: nnU-Net's preprocessing writes them after the arrays, so a
    case an interrupted preprocessing left half-written does not.
    """
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans_file, plans_json = dataset_plans(data.name, plans, configuration)
    folder = plans_file.parent / PlansManager(plans_json).get_configuration(configuration).data_identifier
    listed = infer_dataset_class(str(folder)).get_identifiers(str(folder)) if folder.is_dir() else []
    found = {case for case in listed if (folder / f"{case}.pkl").is_file()}
    missing = sorted({case for cases in data.cases_of.values() for case in cases} - found)
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise InputError(f"{folder} lacks the preprocessed cases {', '.join(missing[:3])}{more}; preprocess the "
                         f"{configuration} configuration of plans {plans} first.")


def _nnunet_folds(data: _Dataset) -> List[Split]:
    """The existing folds; if there are none, the raw dataset's splits or five new subject-grouped folds."""
    raw_splits = data.images.parent / SPLITS_FILE
    for existing in (data.splits_file, raw_splits):
        if existing.is_file():
            return read_splits(existing)
    cases = [case for cases in data.cases_of.values() for case in cases]
    try:
        return subject_folds(cases, subject_of=data.rule.subject_of)
    except ValueError as e:
        raise InputError(f"{data.images}: {str(e).rstrip('.')}, so nnU-Net's five folds cannot be made.") from None


def _find_fold(folds: List[Split], fold: LabelFold, described: Dict[int, dict], taken: Set[int]) -> Optional[int]:
    """The index of an appended fold with `fold`'s content that the sidecar does not give to another (size, seed)."""
    for index in range(N_FOLDS, len(folds)):
        entry = described.get(index)
        if index in taken or not fold.matches(folds[index]):
            continue
        if entry is None or (entry["labeled_subjects"], entry["seed"]) == (fold.labeled_subjects, fold.seed):
            return index
    return None


def _find_content(folds: List[Split], split: Split) -> int:
    """The index of the first appended fold holding exactly `split`'s cases, appending it when there is none."""
    for index in range(N_FOLDS, len(folds)):
        if set(folds[index]["train"]) == set(split["train"]) and set(folds[index]["val"]) == set(split["val"]):
            return index
    folds.append(split)
    return len(folds) - 1


def _sidecar_entry(index: int, fold: LabelFold, rule: SubjectRule) -> dict:
    return {"fold": index, "labeled_subjects": fold.labeled_subjects, "seed": fold.seed,
            "subjects": list(fold.subjects), "validation_subjects": list(fold.validation_subjects),
            "subject_pattern": rule.pattern}


def _read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def _read_sidecar(path: Path) -> Dict[int, dict]:
    """Fold index -> the sidecar's entry of that fold (empty when there is no sidecar)."""
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text())["folds"]
        described = {e["fold"]: respelled_keys(e) for e in entries}
        if all(isinstance(i, int) and isinstance(e["labeled_subjects"], int) and isinstance(e["seed"], int)
               for i, e in described.items()):
            return described
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
        pass
    raise InputError(f"{path} is no nnunet-ssp splits sidecar; remove it and run nnunet-ssp make-splits again.")
