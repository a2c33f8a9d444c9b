"""`prepare_unlabeled`: every frame of every input image into a dataset's unlabeled pool; resumable, parallel.

A frame is done when its three case files are in the pool (see `frames`); a later run skips done frames, a run
that was killed redoes the frames it had not finished. `report.json` records the plans the pool was made with (a
run with plans that preprocess a frame differently is refused), the options and what the last run did;
`manifest.csv` lists every slice of the selected subjects' done frames. One run at a time fills a pool: a second
one is refused while the first holds the pool's lock (`locking`).

Before anything is written, every frame of every input is compared by content (`fingerprints`) with the dataset's
labeled images: a subject with a frame equal to a test image is left out like a test subject named as one, and a
frame equal to a training case of another subject stops the run (the pool's subject names disagree with the
dataset's, so validation subjects could not be kept out of pretraining). A frame equal to a training case of its own
subject gets that case in the manifest (labeled_case), so pretraining draws it once, from the labeled case; with
--allow-test-subjects the frames are compared with the training images for that record only.
"""

import multiprocessing
import sys
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, as_completed, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from batchgenerators.utilities.file_and_folder_operations import load_json
from tqdm import tqdm

from nnunet_ssp.atomic import write_json
from nnunet_ssp.errors import InputError
from nnunet_ssp.locking import folder_lock
from nnunet_ssp.roots import preprocessed_dataset_folder
from nnunet_ssp.subjects import SubjectRule, dataset_subject_rule
from nnunet_ssp.unlabeled.fingerprints import cine_fingerprints
from nnunet_ssp.unlabeled.frames import (Frame, FrameJob, FramePreprocessor, FrameReader, FrameResult,
                                         case_is_complete, read_frames, remove_partial_cases)
from nnunet_ssp.unlabeled.held_out import HeldOut, held_out_subjects, training_images_only
from nnunet_ssp.unlabeled.manifest import (MANIFEST_FILE, ManifestRow, case_rows, pool_case, read_manifest,
                                           write_manifest)
from nnunet_ssp.unlabeled.plans import PoolPlans, load_pool_plans
from nnunet_ssp.unlabeled.sources import (DEFAULT_PATTERNS, BadInput, Source, find_images, folder_dimension,
                                          scan_sources)

REPORT_FILE = "report.json"
_SHOWN_BAD = 10  # bad inputs listed in the summary; report.json lists all
_FRAMES_WAITING_PER_WORKER = 4  # frames read ahead per worker: enough to keep it busy, few in memory


@dataclass
class PoolResult:
    """What a run of `prepare_unlabeled` left in the pool and what it kept out."""
    folder: Path
    rows: List[ManifestRow]
    prepared: List[str]
    already_done: List[str]
    bad: List[BadInput] = field(default_factory=list)
    excluded: List[str] = field(default_factory=list)
    refused: List[str] = field(default_factory=list)
    unlisted: List[str] = field(default_factory=list)

    def counts(self, cases: Optional[Iterable[str]] = None) -> Dict[str, int]:
        """Subjects, frames and slices of the manifest, or of its rows of `cases`."""
        chosen = None if cases is None else set(cases)
        rows = [r for r in self.rows if chosen is None or r.case in chosen]
        return {"subjects": len({r.subject for r in rows}), "frames": len({r.case for r in rows}),
                "slices": len(rows)}

    def report(self, settings: dict) -> dict:
        """The content of report.json."""
        return {**settings, "complete": True, "pool": self.counts(), "prepared_now": self.counts(self.prepared),
                "skipped_already_there": self.counts(self.already_done),
                "bad_inputs": [{"file": b.file, "frame": b.frame, "problem": b.problem} for b in self.bad],
                "excluded_subjects": self.excluded, "refused_test_subjects": self.refused,
                "cases_not_in_manifest": self.unlisted}

    def summary(self) -> str:
        """A short table for the command line."""
        lines = [f"Unlabeled pool {self.folder}", f"  {'':26}{'subjects':>9}{'frames':>8}{'slices':>8}"]
        for label, cases in (("in the pool", None), ("prepared now", self.prepared),
                             ("skipped (already there)", self.already_done)):
            c = self.counts(cases)
            lines.append(f"  {label:26}{c['subjects']:9d}{c['frames']:8d}{c['slices']:8d}")
        bad_frames = sum(b.frame is not None for b in self.bad)
        lines.append(f"  bad files: {len({b.file for b in self.bad})} ({bad_frames} single frames); excluded "
                     f"subjects: {len(self.excluded)}; refused test subjects: {len(self.refused)}")
        lines += [f"  bad: {b.problem}" for b in self.bad[:_SHOWN_BAD]]
        if len(self.bad) > _SHOWN_BAD:
            lines.append(f"  ... and {len(self.bad) - _SHOWN_BAD} more in {self.folder / REPORT_FILE}")
        lines.append(f"  manifest: {self.folder / MANIFEST_FILE}; report: {self.folder / REPORT_FILE}")
        return "\n".join(lines)


def prepare_unlabeled(dataset: Union[int, str], input_dir: Union[str, Path], plans_name: str = "nnUNetPlans",
                      configuration: str = "2d", num_processes: int = 2,
                      patterns: Sequence[str] = DEFAULT_PATTERNS, exclude: Iterable[str] = (),
                      allow_test_subjects: bool = False, flip_base_apex: bool = False,
                      kind: str = "auto", subject_pattern: Optional[str] = None) -> PoolResult:
    """Preprocess every frame of the images in `input_dir` with a dataset's plans into its unlabeled pool.

    `kind` is '4d', '3d' or 'auto' (the first readable file decides); see `sources` for subject ids
    (`subject_pattern` names the subjects in the pool's file names; default: the dataset's recorded pattern).
    """
    plans = load_pool_plans(dataset, plans_name, configuration)
    input_dir = Path(input_dir).resolve()
    files = find_images(input_dir, patterns)
    dimension, decided_by = folder_dimension(files, kind)
    dataset_rule = dataset_subject_rule(preprocessed_dataset_folder(plans.dataset_name))
    pool_rule = SubjectRule(subject_pattern) if subject_pattern is not None else (
        dataset_rule if dataset_rule.pattern is not None else None)
    sources, bad = scan_sources(files, dimension, decided_by, plans.plans_manager.transpose_forward[0], pool_rule)
    for entry in bad:
        _warn(entry.problem)
    file_ending = plans.dataset_json["file_ending"]
    held_out = None if allow_test_subjects else held_out_subjects(plans.dataset_name, file_ending)
    reference = held_out if held_out is not None else _training_images_only(plans.dataset_name, file_ending)
    by_content, labeled = ({}, {}) if reference is None else _compare_with_labeled(sources, reference,
                                                                                      guard=held_out is not None)
    sources, excluded, refused = _select_subjects(sources, set(exclude), held_out, by_content)
    jobs = _frame_jobs(sources)
    if not jobs:
        raise InputError(f"{input_dir} holds no usable image ({len(bad)} bad files, {len(excluded)} excluded and "
                         f"{len(refused)} test subjects).")

    folder = plans.folder
    settings = {"dataset": plans.dataset_name, "plans": plans.plans_file.stem, "configuration": configuration,
                "plans_signature": plans.signature(), "flip_base_apex": flip_base_apex, "input": str(input_dir),
                "patterns": list(patterns), "kind": {4: "4d", 3: "3d"}[dimension],
                "subject_pattern": pool_rule.pattern if pool_rule is not None else None}
    with folder_lock(folder):  # another run would delete this one's temporary cases and race on the manifest
        previous = _previous_settings(folder, settings)
        remove_partial_cases(folder)
        write_json({**settings, "complete": False}, folder / REPORT_FILE)

        already_done = [job.case for job in jobs if case_is_complete(folder, job.case)]
        done = set(already_done)
        todo = [job for job in jobs if job.case not in done]
        if already_done:
            print(f"All {len(jobs)} frames are already in {folder}; nothing to preprocess." if not todo else
                  f"{len(already_done)} of {len(jobs)} frames are already in {folder}; skipping them.")
        new_rows = _preprocess(todo, plans, flip_base_apex, num_processes, bad)
        reusable = _manifest_by_case(folder) if previous.get("flip_base_apex") == flip_base_apex else {}
        rows = [row._replace(labeled_case=labeled.get(job.case, ""))
                for job in jobs if job.case in new_rows or job.case in done
                for row in new_rows.get(job.case) or reusable.get(job.case)
                or case_rows(folder, job.case, plans.plans_manager.transpose_forward, flip_base_apex)]
        write_manifest(rows, folder)
        result = PoolResult(folder, rows, sorted(new_rows), already_done, bad, excluded, refused,
                            _unlisted_cases(folder, jobs))
        write_json(result.report(settings), folder / REPORT_FILE)
        if not rows:
            raise InputError(f"{input_dir} holds no frame nnU-Net could preprocess; see {folder / REPORT_FILE}.")
        return result


def _preprocess(jobs: List[FrameJob], plans: PoolPlans, flip_base_apex: bool, num_processes: int,
                bad: List[BadInput]) -> Dict[str, List[ManifestRow]]:
    """Prepare `jobs`; the manifest rows of each prepared case; problems are warned about and added to `bad`."""
    new_rows = {}
    for result in _run(jobs, plans, flip_base_apex, num_processes):
        if result.problem is None:
            new_rows[result.job.case] = list(result.rows)
        elif not (result.whole_file and any(b.file == result.job.source for b in bad)):
            bad.append(BadInput(result.job.source, result.problem, None if result.whole_file else result.job.frame))
            _warn(result.problem)
    return new_rows


def _unlisted_cases(folder: Path, jobs: List[FrameJob]) -> List[str]:
    """Cases in the pool that no job of this run gives (other, excluded or refused subjects); warns about them."""
    listed = {job.case for job in jobs}
    stored = (p.name[:-len(".b2nd")] for p in folder.glob("*.b2nd") if not p.name.endswith("_seg.b2nd"))
    unlisted = sorted(case for case in stored if case not in listed)
    if unlisted:
        _warn(f"{len(unlisted)} cases in {folder} belong to no frame of this run's input (other, excluded or "
              f"refused subjects); they stay on disk but are not in the manifest.")
    return unlisted


def _warn(message: str) -> None:
    tqdm.write(f"warning: {message}", file=sys.stderr)


def _training_images_only(dataset_name: str, file_ending: str) -> Optional[HeldOut]:
    """The training images to tell labeled frames by under --allow-test-subjects; None when there are none, or
    (with a warning) when the dataset's subject rule does not name their subjects."""
    try:
        reference = training_images_only(dataset_name, file_ending)
    except InputError as e:
        _warn(f"{e} So the pool does not record which of its frames are labeled cases.")
        return None
    return reference if reference.training_images else None


def _compare_with_labeled(sources: List[Source], held_out: HeldOut,
                          guard: bool = True) -> Tuple[Dict[str, str], Dict[str, str]]:
    """Pool subject -> why it is a test subject by content, and pool case -> the training case it equals; with
    `guard`, InputError when a frame equals a training case of another subject. Unreadable files are left to the
    preprocessing, which reports them."""
    found, labeled = {}, {}
    for source in tqdm(sources, desc="Comparing frames with the labeled images", unit="file", disable=not sources):
        try:
            fingerprints = cine_fingerprints(read_frames(str(source.path), source.is_cine).voxels)
        except InputError:
            continue
        for index, fingerprint in enumerate(fingerprints):
            where = f"Frame {index} of {source.path}" if source.is_cine else str(source.path)
            test = held_out.test_images.get(fingerprint)
            if test is not None:
                found.setdefault(source.subject, f"{where} equals the test image {test.file}")
            training = held_out.training_images.get(fingerprint)
            if guard and training is not None and training.subject != source.subject:
                raise InputError(f"{where} equals the training case {training.case} of subject {training.subject}, "
                                 f"but the pool names its subject {source.subject}; name the pool's subjects as the "
                                 f"dataset does with --subject-pattern.")
            if training is not None:
                labeled[pool_case(source.subject, source.first_frame + index)] = training.case
    return found, labeled


def _select_subjects(sources: List[Source], exclude: set, held_out: Optional[HeldOut],
                     by_content: Dict[str, str]) -> Tuple[List[Source], List[str], List[str]]:
    """Sources without excluded subjects and (unless `held_out` is None) test subjects, by name or by content
    (`by_content`: subject -> reason); the names left out."""
    present = {s.subject for s in sources}
    unknown = sorted(exclude - present)
    if unknown:
        _warn(f"--exclude names subjects that the input lacks: {', '.join(unknown)}.")
    by_name = {s.subject for s in sources if held_out is not None and held_out.holds(s.subject, s.path)}
    refused = sorted((by_name | set(by_content)) - exclude)
    for reason in by_content.values():
        _warn(f"{reason}, so its subject is a test subject.")
    if refused:
        _warn(f"Left out {len(refused)} test subjects of the dataset ({', '.join(refused)}); pass "
              f"--allow-test-subjects to pretrain on them.")
    kept = [s for s in sources if s.subject not in exclude and s.subject not in refused]
    return kept, sorted(exclude & present), refused


def _frame_jobs(sources: List[Source]) -> List[FrameJob]:
    """One job per frame, in file order (so a worker reads each file once)."""
    return [FrameJob(str(s.path), s.subject, s.first_frame + i, i if s.is_cine else None,
                     pool_case(s.subject, s.first_frame + i))
            for s in sources for i in range(s.num_frames)]


def _previous_settings(folder: Path, settings: dict) -> dict:
    """The settings of the run that made the pool ({} for a new pool); refuses a pool made with other plans."""
    report = folder / REPORT_FILE
    if not report.is_file():
        return {}
    previous = load_json(str(report))
    if previous.get("plans_signature") != settings["plans_signature"]:
        raise InputError(f"{folder} was prepared with other plans than {settings['plans']} "
                         f"{settings['configuration']} now has; delete that folder to prepare it again.")
    return previous


def pool_flips_base_apex(folder: Path) -> bool:
    """Whether the pool in `folder` was prepared with --flip-base-apex (the labeled cases must follow it)."""
    report = folder / REPORT_FILE
    if not report.is_file():
        return False
    try:
        return bool(load_json(str(report))["flip_base_apex"])
    except (ValueError, KeyError, TypeError):
        raise InputError(f"{report} is not a report of prepare-unlabeled (no readable flip_base_apex); "
                         f"run prepare-unlabeled again.") from None


def _manifest_by_case(folder: Path) -> Dict[str, List[ManifestRow]]:
    """The rows of the pool's current manifest by case ({} when there is none)."""
    try:
        rows = read_manifest(folder)
    except InputError:
        return {}
    by_case = {}
    for row in rows:
        by_case.setdefault(row.case, []).append(row)
    return by_case


def _run(jobs: List[FrameJob], plans: PoolPlans, flip_base_apex: bool, num_processes: int) -> Iterator[FrameResult]:
    """Results of `jobs` as they finish, with a progress bar.

    This process reads each input file once and checks its frames; `num_processes` worker processes (or this
    one, for 1) preprocess and store them, with at most a few frames per worker waiting.
    """
    read = FrameReader()
    progress = tqdm(total=len(jobs), desc="Preprocessing frames", unit="frame", disable=not jobs)
    if num_processes <= 1:
        preprocess = FramePreprocessor(plans, flip_base_apex)
        for job in jobs:
            frame = read(job)
            yield preprocess(frame) if isinstance(frame, Frame) else frame
            progress.update()
        progress.close()
        return
    executor = ProcessPoolExecutor(num_processes, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_worker, initargs=(plans, flip_base_apex))
    waiting = set()
    try:
        for job in jobs:
            frame = read(job)
            if not isinstance(frame, Frame):
                yield frame
                progress.update()
                continue
            waiting.add(executor.submit(_run_in_worker, frame))
            while len(waiting) >= _FRAMES_WAITING_PER_WORKER * num_processes:
                finished, waiting = wait(waiting, return_when=FIRST_COMPLETED)
                yield from _collected(finished, progress)
        yield from _collected(as_completed(waiting), progress)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        progress.close()


def _collected(futures: Iterable[Future], progress: tqdm) -> Iterator[FrameResult]:
    for future in futures:
        yield future.result()
        progress.update()


_WORKER: Optional[FramePreprocessor] = None


def _start_worker(plans: PoolPlans, flip_base_apex: bool) -> None:
    global _WORKER
    _WORKER = FramePreprocessor(plans, flip_base_apex)


def _run_in_worker(frame: Frame) -> FrameResult:
    return _WORKER(frame)
