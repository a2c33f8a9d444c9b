"""The subjects a raw dataset holds out for testing, which must never enter pretraining, and the fingerprints of its
labeled images, by which a renamed test image is still known."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, FrozenSet

from nnunet_ssp.converters.common import CINES_FILE, TEST
from nnunet_ssp.errors import InputError
from nnunet_ssp.roots import preprocessed_dataset_folder, raw_dataset_folder
from nnunet_ssp.subjects import dataset_subject_rule
from nnunet_ssp.unlabeled.fingerprints import LabeledImage, image_fingerprints, labeled_images


@dataclass(frozen=True)
class HeldOut:
    """Test subjects by name, the resolved paths of their cines, and the labeled images by fingerprint."""
    subjects: FrozenSet[str]
    cines: FrozenSet[Path]
    test_images: Dict[str, LabeledImage]
    training_images: Dict[str, LabeledImage]

    def holds(self, subject: str, path: Path) -> bool:
        """Whether an input file is (of) a test subject."""
        return subject in self.subjects or path.resolve() in self.cines


def held_out_subjects(dataset_name: str, file_ending: str, fingerprints: bool = True) -> HeldOut:
    """Subjects with images in `imagesTs` of the raw dataset (named by the dataset's subject rule), those
    `cines.json` marks with split "test", and (with `fingerprints`) the fingerprints of the test and training
    images."""
    raw = raw_dataset_folder(dataset_name)
    if not raw.is_dir():
        raise InputError(f"The raw dataset {raw} is missing, so its test subjects cannot be kept out; pass "
                         f"--allow-test-subjects if the input holds none.")
    rule = dataset_subject_rule(preprocessed_dataset_folder(dataset_name))
    tests = labeled_images(raw / "imagesTs", file_ending, rule)
    subjects, cines = {image.subject for image in tests}, set()
    cines_file = raw / CINES_FILE
    if cines_file.is_file():
        for name, entry in _cine_entries(cines_file).items():
            if entry.get("split") == TEST:
                subjects.add(name)
                cines.add(Path(entry["path"]).resolve())
    if not fingerprints:
        return HeldOut(frozenset(subjects), frozenset(cines), {}, {})
    return HeldOut(frozenset(subjects), frozenset(cines), image_fingerprints(tests, "test images"),
                   image_fingerprints(labeled_images(raw / "imagesTr", file_ending, rule), "training images"))


def training_images_only(dataset_name: str, file_ending: str) -> HeldOut:
    """No test subjects, only the fingerprints of the raw dataset's training images (none without its imagesTr): what
    the pool's frames are still compared with under --allow-test-subjects, to know which frames are labeled cases."""
    rule = dataset_subject_rule(preprocessed_dataset_folder(dataset_name))
    images = labeled_images(raw_dataset_folder(dataset_name) / "imagesTr", file_ending, rule)
    return HeldOut(frozenset(), frozenset(), {}, image_fingerprints(images, "training images"))


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
