"""What each stage of a dataset saw, by subject, and every overlap that must not exist.

Subjects follow the dataset's subject rule (`nnunet_ssp.subjects`). Stages: the labeled training and validation
subjects of every fold of `splits_final.json`, the validation subjects make-splits' folds share, the test subjects
(imagesTs, cines.json split "test"), the subjects of the unlabeled pool of one configuration of the plans (2d unless
given), and the subjects each pretraining checkpoint's `ssp` record lists. Leaks: a test subject in the pool, a test or shared
validation subject in a pretraining, a subject in two of a fold's training, validation and test subjects.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Union

from nnunet_ssp.checkpoint import load_checkpoint
from nnunet_ssp.converters.subject_splits import SPLITS_FILE
from nnunet_ssp.errors import InputError
from nnunet_ssp.roots import dataset_name_of, preprocessed_dataset_folder, raw_dataset_folder
from nnunet_ssp.splits import CONFIGURATION, read_splits, sidecar_validation_subjects
from nnunet_ssp.subjects import SubjectRule, dataset_subject_rule
from nnunet_ssp.unlabeled.manifest import MANIFEST_FILE, read_manifest
from nnunet_ssp.unlabeled.plans import pool_folder

_SHOWN = 4  # subjects named per table cell


@dataclass
class Audit:
    """The subjects of every stage (name -> subjects), the leaks found, and what could not be audited."""
    dataset_name: str
    rule: SubjectRule
    stages: Dict[str, Set[str]] = field(default_factory=dict)
    leaks: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def table(self) -> str:
        """A short table of the stages, then the leaks and notes."""
        lines = [f"Audit of {self.dataset_name} (subjects by {self.rule.describe()})",
                 f"  {'stage':34}{'subjects':>9}  examples"]
        for name, subjects in self.stages.items():
            shown = ", ".join(sorted(subjects)[:_SHOWN]) + (", ..." if len(subjects) > _SHOWN else "")
            lines.append(f"  {name:34}{len(subjects):9d}  {shown}")
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  LEAK: {leak}" for leak in self.leaks] or ["  no overlap that must not exist."]
        return "\n".join(lines)


def audit_dataset(dataset: Union[int, str], plans: str = "nnUNetPlans",
                  checkpoints: Sequence[Union[str, Path]] = (), configuration: str = CONFIGURATION) -> Audit:
    """Audit a dataset's splits, test subjects, the unlabeled pool of `configuration` and the given pretraining
    checkpoints."""
    name = dataset_name_of(dataset)
    folder = preprocessed_dataset_folder(name)
    rule = dataset_subject_rule(folder)
    audit = Audit(name, rule)
    test = _test_subjects(name)
    audit.stages["test"] = test
    validation = set(sidecar_validation_subjects(folder))
    if validation:
        audit.stages["validation (shared by make-splits)"] = validation
        _overlap(audit, "validation (shared by make-splits)", validation, "test", test)
    for index, fold in enumerate(_folds(folder)):
        train, val = (_subjects_of(rule, fold[part], folder / SPLITS_FILE) for part in ("train", "val"))
        audit.stages[f"fold {index} training"] = train
        audit.stages[f"fold {index} validation"] = val
        _overlap(audit, f"fold {index} training", train, f"fold {index} validation", val)
        _overlap(audit, f"fold {index} training", train, "test", test)
        _overlap(audit, f"fold {index} validation", val, "test", test)
    pool = _pool_subjects(folder, plans, configuration)
    if pool is None:
        audit.notes.append(f"no unlabeled pool of plans {plans} ({configuration}).")
    else:
        audit.stages["unlabeled pool"] = pool
        _overlap(audit, "unlabeled pool", pool, "test", test)
    for checkpoint in checkpoints:
        seen = _pretraining_subjects(Path(checkpoint))
        stage = f"pretraining {Path(checkpoint).parent.name}/{Path(checkpoint).name}"
        if seen is None:
            audit.notes.append(f"{checkpoint} has no ssp record with the subjects it saw, so it is not audited.")
            continue
        audit.stages[stage] = seen
        _overlap(audit, stage, seen, "test", test)
        _overlap(audit, stage, seen, "validation (shared by make-splits)", validation)
    return audit


def _overlap(audit: Audit, first: str, a: Set[str], second: str, b: Set[str]) -> None:
    both = sorted(a & b)
    if both:
        more = f" and {len(both) - _SHOWN} more" if len(both) > _SHOWN else ""
        audit.leaks.append(f"{len(both)} subjects in both {first} and {second}: {', '.join(both[:_SHOWN])}{more}")


def _subjects_of(rule: SubjectRule, cases: Sequence[str], where: Path) -> Set[str]:
    return set(rule.group(cases, where)) if cases else set()


def _test_subjects(dataset_name: str) -> Set[str]:
    """Subjects of imagesTs (by the dataset's rule) and those cines.json marks "test"."""
    from nnunet_ssp.unlabeled.held_out import held_out_subjects

    raw = raw_dataset_folder(dataset_name)
    try:
        file_ending = json.loads((raw / "dataset.json").read_text())["file_ending"]
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"{raw / 'dataset.json'} is missing or has no file_ending.") from None
    return set(held_out_subjects(dataset_name, file_ending, fingerprints=False).subjects)


def _folds(folder: Path) -> List[dict]:
    splits = folder / SPLITS_FILE
    return read_splits(splits) if splits.is_file() else []


def _pool_subjects(folder: Path, plans: str, configuration: str) -> Optional[Set[str]]:
    """Subjects of the pool's manifest (None when the plans, the configuration or the pool are missing)."""
    try:
        identifier = json.loads((folder / f"{plans}.json").read_text())["configurations"][configuration][
            "data_identifier"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    pool = pool_folder(folder, identifier)
    return {row.subject for row in read_manifest(pool)} if (pool / MANIFEST_FILE).is_file() else None


def _pretraining_subjects(checkpoint: Path) -> Optional[Set[str]]:
    """The subjects a checkpoint's ssp record lists (None when it has no such record)."""
    ssp = load_checkpoint(str(checkpoint)).get("ssp")
    try:
        return set(ssp["data"]["subjects"])
    except (KeyError, TypeError):
        return None
