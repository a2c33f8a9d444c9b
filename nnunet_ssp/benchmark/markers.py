"""Finished-run markers: `<out>/runs/<run>/done.json`, written atomically after a run's last step.

A run counts as finished when its marker exists, describes the same run (dataset, plans, trainer, fold, start
weights, ...) and every output it lists (final checkpoint, evaluation summary) still exists. Deleting a marker, or
an output, makes the run pending again; a marker of other settings (another schedule in the same folder) does too.

    {"run": {identity}, "outputs": {"checkpoint": path, "summary": path}, "commands": [[argv], ...],
     "seconds": {"train": s, "predict": s, "evaluate": s}, "finished": "2025-01-31T12:00:00"}
"""

import json
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Dict, List, Sequence

from nnunet_ssp.atomic import write_json
from nnunet_ssp.benchmark.grid import Layout, Run


def run_identity(run: Run, layout: Layout) -> dict:
    """What must agree between a marker and a planned run for the marker to count."""
    return {**asdict(run), "dataset": layout.dataset_name, "plans": layout.plans,
            "model_folder": str(layout.model_folder(run)),
            "pretrained_weights": str(layout.checkpoint(run.pretraining)) if run.pretraining else None}


def write_marker(run: Run, layout: Layout, commands: List[List[str]], seconds: Dict[str, float]) -> None:
    """Mark `run` finished."""
    write_json({"run": run_identity(run, layout), "outputs": {k: str(v) for k, v in layout.outputs(run).items()},
                "commands": commands, "seconds": seconds, "finished": datetime.now().isoformat(timespec="seconds")},
               layout.marker(run))


def is_finished(run: Run, layout: Layout) -> bool:
    """Whether `run` has a marker of the same run whose outputs all exist."""
    try:
        record = json.loads(layout.marker(run).read_text())
        return (record["run"] == run_identity(run, layout)
                and all(Path(path).is_file() for path in record["outputs"].values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def pending_runs(runs: Sequence[Run], layout: Layout) -> List[Run]:
    """The runs still to do, in grid order."""
    return [run for run in runs if not is_finished(run, layout)]


def finished_runs(runs: Sequence[Run], layout: Layout) -> List[Run]:
    """The finished runs, in grid order."""
    return [run for run in runs if is_finished(run, layout)]
