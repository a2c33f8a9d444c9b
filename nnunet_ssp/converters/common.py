"""What every cine converter shares: finding subjects, the test hold-out, and writing the nnU-Net raw dataset.

A converter describes its source layout with a `CineFormat` (labels, how to read one subject folder, how to read a
subject's labeled frames) and calls `convert_cines`. The dataset it writes:

    $nnUNet_raw/DatasetXXX_NAME/
        imagesTr/<subject>_frameYY_0000.nii.gz   labelsTr/<subject>_frameYY.nii.gz    (training subjects, ED + ES)
        imagesTs/<subject>_frameYY_0000.nii.gz   labelsTs/<subject>_frameYY.nii.gz    (test subjects)
        dataset.json       nnU-Net's, plus a record under "nnunet_ssp"
        splits_final.json  five folds grouped by subject (also written to $nnUNet_preprocessed/DatasetXXX_NAME/)
        cines.json         subject -> {"path", "split", "ED", "ES", "frames", group/vendor...}; ED/ES 0-based
"""

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

import SimpleITK as sitk
from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json
from nnunetv2.utilities.dataset_name_id_conversion import find_candidate_datasets
from tqdm import tqdm

from nnunet_ssp.atomic import atomic_dir, write_json
from nnunet_ssp.converters.cases import CASE_MARKER, case_id
from nnunet_ssp.converters.images import check_same_size, read_image, read_size
from nnunet_ssp.converters.subject_splits import (N_FOLDS, SPLIT_SEED, SPLITS_FILE, draw_test_subjects,
                                                  publish_splits, subject_folds)
from nnunet_ssp.errors import InputError
from nnunet_ssp.roots import raw_dataset_folder

CINES_FILE = "cines.json"
FILE_ENDING = ".nii.gz"
CHANNEL_NAME = "cineMRI"  # not "CT", so nnU-Net normalises each image by z-score
TRAIN, TEST = "train", "test"


@dataclass(frozen=True)
class Subject:
    """One subject: its 4D cine, the 0-based indices of its labeled ED and ES frames, and what is known of it."""
    name: str
    split: str
    cine: Path
    ed: int
    es: int
    frames: int
    info: Dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LabeledFrame:
    """A 3D frame of a subject with its label map (None for a test subject without labels) and their files."""
    index: int
    image: sitk.Image
    label: Optional[sitk.Image]
    image_file: Path
    label_file: Path


@dataclass(frozen=True)
class CineFormat:
    """A source layout: its name, labels, the folders of its official split, and its two readers."""
    name: str
    labels: Dict[str, int]
    reference: str
    official_folders: Dict[str, str]  # sub-folder of the input -> TRAIN or TEST
    read_subject: Callable[[Path, str], Subject]  # (subject folder, split) -> Subject
    read_frames: Callable[[Subject], Iterator[LabeledFrame]]  # the ED and ES frames of a subject
    skip_bad_subjects: bool = False  # warn about a subject with bad input and convert the others, instead of stopping
    absent_subjects: Callable[[Set[str]], Dict[str, str]] = lambda found: {}  # listed, not found -> why, one sentence


@dataclass(frozen=True)
class ConversionResult:
    """What a conversion wrote."""
    folder: Path
    train_subjects: List[str]
    test_subjects: List[str]
    n_train_cases: int
    n_test_cases: int
    splits_files: List[Path]
    skipped: Dict[str, str] = field(default_factory=dict)  # subject -> why it was left out

    def summary(self) -> str:
        """A few readable lines for the command line."""
        lines = [
            f"{self.folder.name}: {self.n_train_cases} training cases of {len(self.train_subjects)} subjects, "
            f"{self.n_test_cases} test cases of {len(self.test_subjects)} subjects",
            f"  raw dataset: {self.folder}",
            f"  {N_FOLDS} subject-grouped folds: " + ", ".join(str(p) for p in self.splits_files),
            f"  4D cines: {self.folder / CINES_FILE}",
        ]
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)} subject{'s' if len(self.skipped) > 1 else ''}:")
            lines += [f"    {name}: {why}" for name, why in self.skipped.items()]
        return "\n".join(lines)


def make_subject(name: str, split: str, cine: Path, phases: Dict[str, int], first_frame: int, source: Path,
                 info: Dict[str, str]) -> Subject:
    """A Subject whose ED and ES (`phases`, numbered from `first_frame` as written in `source`) lie in its cine."""
    if CASE_MARKER in name:
        raise InputError(f"{cine.parent}: a subject name must not contain '{CASE_MARKER}'.")
    frames = read_size(cine, 4)[3]
    for phase, number in phases.items():
        if not 0 <= number - first_frame < frames:
            raise InputError(f"{source}: {phase} frame {number} of subject {name} lies outside the {frames} frames "
                             f"of {cine}.")
    if phases["ED"] == phases["ES"]:
        raise InputError(f"{source}: ED and ES of subject {name} are the same frame {phases['ED']}.")
    return Subject(name, split, cine, phases["ED"] - first_frame, phases["ES"] - first_frame, frames, info)


def read_label(label_file: Path, subject: Subject, dimension: int) -> Optional[sitk.Image]:
    """The label map at `label_file`; a test subject may lack it (None), a training subject may not."""
    if subject.split == TEST and not label_file.exists():
        return None
    return read_image(label_file, dimension)


def convert_cines(fmt: CineFormat, input_dir: Path, dataset_id: int, name: str, test_subjects: Optional[int],
                  test_list: Optional[Path], overwrite: bool) -> ConversionResult:
    """Convert a folder in `fmt`'s layout into the raw dataset `DatasetXXX_NAME` (see the module docstring).

    With `fmt.skip_bad_subjects`, a subject whose files are bad is left out with a warning (and listed in the
    result) instead of stopping the conversion; its frames are read and checked before any of them is written.
    """
    input_dir = Path(input_dir).resolve()
    dataset_name = _dataset_name(dataset_id, name)
    target = raw_dataset_folder(dataset_name)
    _check_target(dataset_id, target, overwrite)
    folders = _subject_folders(fmt, input_dir, test_subjects, test_list)
    skipped = _skip(fmt, fmt.absent_subjects({folder.name for folder, _ in folders}))
    subjects = [s for s in (_attempt(fmt, skipped, folder.name, fmt.read_subject, folder, split)
                            for folder, split in folders) if s is not None]
    _check_enough([s for s in subjects if s.split == TRAIN], input_dir)
    with atomic_dir(target) as tmp:
        cases, converted = {TRAIN: [], TEST: []}, []
        for subject in tqdm(subjects, desc=f"Converting {fmt.name}", unit="subject"):
            frames = _attempt(fmt, skipped, subject.name, _checked_frames, fmt, subject)
            if frames is not None:
                cases[subject.split] += [_write_case(tmp, subject, frame) for frame in frames]
                converted.append(subject)
        _check_enough([s for s in converted if s.split == TRAIN], input_dir)
        folds = subject_folds(cases[TRAIN])
        _write_dataset_json(tmp, dataset_name, fmt, input_dir, len(cases[TRAIN]), len(cases[TEST]), skipped)
        write_json(folds, tmp / SPLITS_FILE)
        write_json({s.name: _cine_entry(s) for s in converted}, tmp / CINES_FILE)
    return ConversionResult(target, [s.name for s in converted if s.split == TRAIN],
                            [s.name for s in converted if s.split == TEST], len(cases[TRAIN]), len(cases[TEST]),
                            [target / SPLITS_FILE] + publish_splits(folds, dataset_name), skipped)


def _skip(fmt: CineFormat, problems: Dict[str, str]) -> Dict[str, str]:
    """Warn about each subject of `problems` (subject -> one sentence) that is left out; stop at the first unless
    `fmt` skips bad subjects."""
    for subject, problem in problems.items():
        if not fmt.skip_bad_subjects:
            raise InputError(problem)
        tqdm.write(f"warning: subject {subject} skipped: {problem}", file=sys.stderr)
    return dict(problems)


def _attempt(fmt: CineFormat, skipped: Dict[str, str], subject: str, read: Callable, *args):
    """`read(*args)`, or None after recording `subject` in `skipped` when it raises an InputError and `fmt` skips
    bad subjects."""
    try:
        return read(*args)
    except InputError as e:
        skipped.update(_skip(fmt, {subject: str(e)}))
        return None


def _checked_frames(fmt: CineFormat, subject: Subject) -> List[LabeledFrame]:
    """The labeled frames of `subject`, each label map checked to fit its image."""
    frames = list(fmt.read_frames(subject))
    for frame in frames:
        if frame.label is not None:
            check_same_size(frame.image, frame.label, frame.image_file, frame.label_file)
    return frames


def _check_enough(train: Sequence[Subject], input_dir: Path) -> None:
    if len(train) < N_FOLDS:
        raise InputError(f"{input_dir} has {len(train)} training subjects, too few for {N_FOLDS} subject-grouped "
                         f"folds.")


def _dataset_name(dataset_id: int, name: str) -> str:
    if not 1 <= dataset_id <= 999:
        raise InputError(f"Dataset ID {dataset_id} must lie between 1 and 999.")
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
        raise InputError(f"Dataset name {name!r} may hold only letters, digits, '-' and '_'.")
    return f"Dataset{dataset_id:03d}_{name}"


def _check_target(dataset_id: int, target: Path, overwrite: bool) -> None:
    """Refuse an ID another dataset name holds (nnU-Net needs one name per ID), and an existing target."""
    others = [str(c) for c in find_candidate_datasets(dataset_id) if c != target.name]
    if others:
        raise InputError(f"Dataset ID {dataset_id} is taken by {others[0]} under nnUNet_raw, nnUNet_preprocessed "
                         f"or nnUNet_results; choose another ID or remove that dataset.")
    if target.exists() and not overwrite:
        raise InputError(f"{target} already exists; pass --overwrite to replace it.")


def _subject_folders(fmt: CineFormat, input_dir: Path, test_subjects: Optional[int],
                     test_list: Optional[Path]) -> List[Tuple[Path, str]]:
    """(folder, split) of every subject: from the official sub-folders, or a flat folder with a hold-out."""
    if not input_dir.is_dir():
        raise InputError(f"{input_dir} is not a folder.")
    official = {input_dir / sub: split for sub, split in fmt.official_folders.items() if (input_dir / sub).is_dir()}
    if official:
        if test_subjects is not None or test_list is not None:
            raise InputError(f"{input_dir} has the official {fmt.name} split into "
                             f"{', '.join(fmt.official_folders)}, so it takes no --test-subjects or --test-list.")
        found = [(folder, split) for parent, split in official.items() for folder in _folders_in(parent)]
    else:
        folders = _folders_in(input_dir)
        held_out = set(_held_out(input_dir, [f.name for f in folders], test_subjects, test_list))
        found = [(folder, TEST if folder.name in held_out else TRAIN) for folder in folders]
    if not found:
        raise InputError(f"{input_dir} contains no subject folders.")
    return found


def _folders_in(parent: Path) -> List[Path]:
    return sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))


def _held_out(input_dir: Path, names: Sequence[str], count: Optional[int], list_file: Optional[Path]) -> List[str]:
    if count is not None and list_file is not None:
        raise InputError("Give either --test-subjects or --test-list, not both.")
    if list_file is not None:
        return _read_test_list(Path(list_file), names, input_dir)
    if count is None:
        return []
    if not 0 <= count <= len(names):
        raise InputError(f"--test-subjects {count} must lie between 0 and the {len(names)} subjects of {input_dir}.")
    return draw_test_subjects(names, count)


def _read_test_list(list_file: Path, names: Sequence[str], input_dir: Path) -> List[str]:
    """Subject names, one a line (blank lines and lines starting with # are skipped), all present in the input."""
    if not list_file.is_file():
        raise InputError(f"{list_file} is missing.")
    listed = [line.strip() for line in list_file.read_text().splitlines()]
    listed = [line for line in listed if line and not line.startswith("#")]
    unknown = sorted(set(listed) - set(names))
    if unknown:
        raise InputError(f"{list_file} names subjects that {input_dir} lacks: {', '.join(unknown)}.")
    return listed


def _write_case(folder: Path, subject: Subject, frame: LabeledFrame) -> str:
    """Write one frame (and its label map) as an nnU-Net case; return the case id."""
    case = case_id(subject.name, frame.index)
    suffix = "Tr" if subject.split == TRAIN else "Ts"
    files = [(frame.image, folder / f"images{suffix}" / f"{case}_0000{FILE_ENDING}")]
    if frame.label is not None:
        files.append((frame.label, folder / f"labels{suffix}" / f"{case}{FILE_ENDING}"))
    for image, path in files:
        path.parent.mkdir(exist_ok=True)
        sitk.WriteImage(image, str(path), True)
    return case


def _write_dataset_json(folder: Path, dataset_name: str, fmt: CineFormat, input_dir: Path, n_train: int,
                        n_test: int, skipped: Dict[str, str]) -> None:
    generate_dataset_json(
        str(folder), channel_names={0: CHANNEL_NAME}, labels=dict(fmt.labels), num_training_cases=n_train,
        file_ending=FILE_ENDING, dataset_name=dataset_name, reference=fmt.reference,
        description=f"ED and ES frames of the short-axis cines of {fmt.name}, converted by nnunet-ssp.",
        license=f"the terms of the {fmt.name} data set", converted_by="nnunet-ssp", numTest=n_test,
        nnunet_ssp={
            "source_format": fmt.name,
            "source_folder": str(input_dir),
            "label_convention": fmt.name,
            "case_naming": f"<subject>{CASE_MARKER}YY with YY = 0-based frame index + 1; "
                           f"the subject is everything before '{CASE_MARKER}'",
            "cines": CINES_FILE,
            "splits": f"{SPLITS_FILE}: {N_FOLDS} folds grouped by subject (nnU-Net's generate_crossval_split "
                      f"over sorted subjects, seed {SPLIT_SEED})",
            **({"skipped_subjects": skipped} if skipped else {}),
        })


def _cine_entry(subject: Subject) -> Dict:
    return {"path": str(subject.cine.resolve()), "split": subject.split, "ED": subject.ed, "ES": subject.es,
            "frames": subject.frames, **subject.info}
