"""A dataset's subject rule: which subject each case id belongs to, set once per dataset and read by every stage.

The rule lives in `$nnUNet_preprocessed/DatasetXXX/nnunet_ssp.json`:

    {"subject_pattern": "(patient\\d+)" or null, "set_by": "make-splits"}

`null` (and a dataset without the file) is the converters' rule: a case `<subject>_frameYY` is frame YY - 1 of
`<subject>`. A pattern is a regular expression searched in each case id whose first group is the subject.
`nnunet-ssp make-splits --subject-pattern` and the converters write the file; make-splits, prepare-unlabeled's test
guard, the pretraining trainers, the benchmark and the audit read it with `dataset_subject_rule`.
"""

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple, Union

from nnunet_ssp.atomic import write_json
from nnunet_ssp.converters.cases import CASE_MARKER, subject_of_case
from nnunet_ssp.errors import InputError
from nnunet_ssp.slices import subject_and_frame_of_case

RULE_FILE = "nnunet_ssp.json"


@dataclass(frozen=True)
class SubjectRule:
    """The converters' `<subject>_frameYY` rule (pattern None), or the first group of `pattern` in a case id."""
    pattern: Optional[str] = None

    def __post_init__(self):
        if self.pattern is None:
            return
        try:
            regex = re.compile(self.pattern)
        except re.error as e:
            raise InputError(f"The subject pattern {self.pattern!r} is no valid regular expression ({e}).") from None
        if regex.groups < 1:
            raise InputError(f"The subject pattern {self.pattern!r} has no group, but its first group must capture "
                             f"the subject.")

    def describe(self) -> str:
        """The rule in a few words."""
        return (f"the subject pattern {self.pattern!r}" if self.pattern is not None
                else f"the converters' rule <subject>{CASE_MARKER}YY")

    def subject_of(self, case: str) -> str:
        """The subject of a case id; ValueError when the rule does not name one."""
        if self.pattern is None:
            return subject_of_case(case)
        match = re.search(self.pattern, case)
        if match is None or not match.group(1):
            raise ValueError(f"case id {case!r} does not match the subject pattern {self.pattern!r}")
        return match.group(1)

    def names_subject(self, case: str) -> bool:
        """Whether the rule names the subject of a case id."""
        try:
            self.subject_of(case)
            return True
        except ValueError:
            return False

    def subject_and_frame(self, case: str) -> Tuple[str, int]:
        """Subject and 0-based frame of a labeled case (frame -1 when the id does not say it)."""
        if self.pattern is None:
            return subject_and_frame_of_case(case)
        return self.subject_of(case), -1

    def group(self, cases: Iterable[str], where: Union[str, Path]) -> Dict[str, List[str]]:
        """Subject -> its sorted cases; InputError naming `where` when the rule misses some or all of them."""
        cases = sorted(map(str, cases))  # nnU-Net lists identifiers as numpy strings
        grouped, missed = defaultdict(list), []
        for case in cases:
            try:
                grouped[self.subject_of(case)].append(case)
            except ValueError:
                missed.append(case)
        if missed:
            hint = "; name the subjects with --subject-pattern" if self.pattern is None else ""
            which = "none" if len(missed) == len(cases) else f"{len(cases) - len(missed)}"
            raise InputError(f"{where}: {self.describe()} names the subject of {which} of its {len(cases)} cases "
                             f"(not of {missed[0]}){hint}.")
        return dict(grouped)


def dataset_subject_rule(preprocessed_dataset_folder: Union[str, Path]) -> SubjectRule:
    """The subject rule recorded for the dataset whose preprocessed folder is given (the converters' rule if none)."""
    path = Path(preprocessed_dataset_folder) / RULE_FILE
    if not path.is_file():
        return SubjectRule()
    try:
        pattern = json.loads(path.read_text())["subject_pattern"]
        if pattern is None or isinstance(pattern, str):
            return SubjectRule(pattern)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
        pass
    raise InputError(f'{path} is no subject rule of nnunet-ssp ({{"subject_pattern": RE or null}}); remove it and '
                     f'run nnunet-ssp make-splits again.')


def record_subject_rule(preprocessed_dataset_folder: Union[str, Path], rule: SubjectRule, set_by: str) -> None:
    """Write the dataset's subject rule (atomically)."""
    write_json({"subject_pattern": rule.pattern, "set_by": set_by}, Path(preprocessed_dataset_folder) / RULE_FILE)


def settled_subject_rule(preprocessed_dataset_folder: Union[str, Path], pattern: Optional[str]) -> SubjectRule:
    """The rule a command asked for with `pattern` (None: the recorded one); InputError when it differs from a
    recorded rule, since pools and pretrainings were named by that one."""
    recorded = dataset_subject_rule(preprocessed_dataset_folder)
    if pattern is None or pattern == recorded.pattern:
        return recorded
    rule = SubjectRule(pattern)
    path = Path(preprocessed_dataset_folder) / RULE_FILE
    if path.is_file():
        raise InputError(f"{path} already names the subjects with {recorded.describe()}, not {pattern!r}; remove "
                         f"that file (and redo the pool and pretraining named by it) to change the rule.")
    return rule
