"""A run's records in `<out>/runs/<run>/`: `done.json` marks it finished, `train.json` tracks its training.

A run counts as finished when its marker exists, describes the same run (dataset, plans, trainer, fold and, for a
fine-tuning, the path, size and modification time of the pretraining checkpoint it started from, and the version of
the trainer's defaults, `defaults.FINETUNE_RECIPE_VERSION` or the method's `recipe_version` in the registry), every
output it lists (final checkpoint, evaluation summary) still exists, and its pretraining run is finished too. Deleting a marker, or
an output, makes the run pending again; a marker of other settings (another schedule in the same folder) does too,
and so does a pretraining done again (a new checkpoint) for every fine-tuning that started from it, and a run made
before its trainer's defaults changed.

`train.json` is written when a run's training starts (`finished` null) and again when it ends, so that an
interrupted run continues where it stopped: training that finished is not redone, training that was cut short
continues from its checkpoint. The runner removes it just before it writes `done.json`, so deleting `done.json`
redoes the whole run.

    done.json   {"run": {identity}, "outputs": {"checkpoint": path, "summary": path}, "commands": [[argv], ...],
                 "seconds": {"train": s, "predict": s, "evaluate": s}, "finished": "2025-01-31T12:00:00"}
    train.json  {"run": {identity}, "command": [argv], "seconds": s or null, "finished": "..." or null}
"""

import json
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from nnunet_ssp.atomic import write_json
from nnunet_ssp.benchmark.grid import FINETUNE, PRETRAIN, Run
from nnunet_ssp.benchmark.layout import Layout
from nnunet_ssp.defaults import FINETUNE_RECIPE_VERSION
from nnunet_ssp.methods import get_method
from nnunet_ssp.spelling import respelled_keys

TRAIN_NOT_STARTED, TRAIN_INTERRUPTED, TRAIN_FINISHED = "not started", "interrupted", "finished"


def run_identity(run: Run, layout: Layout) -> dict:
    """What must agree between a record and a planned run for the record to count."""
    identity = {**asdict(run), "dataset": layout.dataset_name, "plans": layout.plans,
                "model_folder": str(layout.model_folder(run)),
                "pretrained_weights": file_stamp(layout.checkpoint(run.pretraining)) if run.pretraining else None}
    if run.kind == FINETUNE:
        return {**identity, "finetune_recipe": FINETUNE_RECIPE_VERSION}
    version = get_method(run.method).recipe_version if run.kind == PRETRAIN else 1
    if version > 1:  # version 1 adds nothing, so records made before versions count
        return {**identity, "pretrain_recipe": version}
    return identity


def file_stamp(path: Path) -> Optional[dict]:
    """Path, size and modification time of a file (None while it is missing): a rewritten file gets another stamp."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return {"path": str(path), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _now() -> str:
    return datetime.now().isoformat(timespec="seconds")


def write_marker(run: Run, layout: Layout, commands: List[List[str]], seconds: Dict[str, float]) -> None:
    """Mark `run` finished."""
    write_json({"run": run_identity(run, layout), "outputs": {k: str(v) for k, v in layout.outputs(run).items()},
                "commands": commands, "seconds": seconds, "finished": _now()}, layout.marker(run))


def _record(path: Path, run: Run, layout: Layout) -> Optional[dict]:
    """The JSON record at `path` if it is one of `run` (same identity), else None."""
    try:
        record = json.loads(path.read_text())
        return record if respelled_keys(record["run"]) == respelled_keys(run_identity(run, layout)) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_finished(run: Run, layout: Layout) -> bool:
    """Whether `run` has a marker of the same run whose outputs all exist, and its pretraining is finished."""
    if run.pretraining is not None and not is_finished(run.pretraining, layout):
        return False
    record = _record(layout.marker(run), run, layout)
    try:
        return record is not None and all(Path(path).is_file() for path in record["outputs"].values())
    except (KeyError, TypeError, AttributeError):
        return False


def pending_runs(runs: Sequence[Run], layout: Layout) -> List[Run]:
    """The runs still to do, in grid order."""
    return [run for run in runs if not is_finished(run, layout)]


def finished_runs(runs: Sequence[Run], layout: Layout) -> List[Run]:
    """The finished runs, in grid order."""
    return [run for run in runs if is_finished(run, layout)]


def write_train_record(run: Run, layout: Layout, command: List[str], seconds: Optional[float] = None) -> None:
    """Record that `run`'s training with `command` started (`seconds` None) or finished after `seconds`."""
    write_json({"run": run_identity(run, layout), "command": command, "seconds": seconds,
                "finished": None if seconds is None else _now()}, layout.train_record(run))


def train_record(run: Run, layout: Layout) -> Optional[dict]:
    """`run`'s train.json, or None when there is none of this run."""
    return _record(layout.train_record(run), run, layout)


def train_state(run: Run, layout: Layout) -> str:
    """TRAIN_FINISHED when train.json says so and the final checkpoint exists, TRAIN_INTERRUPTED when it says the
    training started and left a checkpoint to continue from, else TRAIN_NOT_STARTED."""
    record = train_record(run, layout)
    if record is None:
        return TRAIN_NOT_STARTED
    if record.get("finished"):
        return TRAIN_FINISHED if layout.checkpoint(run).is_file() else TRAIN_NOT_STARTED
    return TRAIN_INTERRUPTED if any(path.is_file() for path in layout.checkpoints(run)) else TRAIN_NOT_STARTED
