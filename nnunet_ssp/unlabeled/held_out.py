"""The subjects a raw dataset holds out for testing, which must never enter pretraining."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, FrozenSet

from nnunetv2.utilities.utils import get_identifiers_from_splitted_dataset_folder

from nnunet_ssp.converters.common import CINES_FILE, TEST
from nnunet_ssp.errors import InputError
from nnunet_ssp.roots import raw_dataset_folder
from nnunet_ssp.slices import subject_and_frame_of_case


@dataclass(frozen=True)
class HeldOut:
    """Test subjects by name, and the resolved paths of their cines."""
    subjects: FrozenSet[str]
    cines: FrozenSet[Path]

    def holds(self, subject: str, path: Path) -> bool:
        """Whether an input file is (of) a test subject."""
        return subject in self.subjects or path.resolve() in self.cines


def held_out_subjects(dataset_name: str, file_ending: str) -> HeldOut:
    """Subjects with images in `imagesTs` of the raw dataset, and those `cines.json` marks with split "test"."""
    raw = raw_dataset_folder(dataset_name)
    if not raw.is_dir():
        raise InputError(f"The raw dataset {raw} is missing, so its test subjects cannot be kept out; pass "
                         f"--allow-test-subjects if the input holds none.")
    subjects, cines = set(), set()
    images_ts = raw / "imagesTs"
    if images_ts.is_dir():
        cases = get_identifiers_from_splitted_dataset_folder(str(images_ts), file_ending)
        subjects.update(subject_and_frame_of_case(str(case))[0] for case in cases)
    cines_file = raw / CINES_FILE
    if cines_file.is_file():
        for name, entry in _cine_entries(cines_file).items():
            if entry.get("split") == TEST:
                subjects.add(name)
                cines.add(Path(entry["path"]).resolve())
    return HeldOut(frozenset(subjects), frozenset(cines))


def _cine_entries(cines_file: Path) -> Dict[str, dict]:
    """Subject -> its entry in the converters' cines.json, each checked to be an object with a "path"."""
    try:
        entries = json.loads(cines_file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{cines_file} is not valid JSON ({e}).") from None
    if not isinstance(entries, dict):
        raise InputError(f"{cines_file} is no JSON object of subject -> cine entry.")
    for name, entry in entries.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise InputError(f'{cines_file}: the entry of subject {name} is no object with a "path" (its cine).')
    return entries
