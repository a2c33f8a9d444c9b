"""Seeded nnU-Net training: seed Python's, numpy's and torch's generators, record the seeds, then run nnU-Net's own
`nnUNetv2_train` entry point in the same process.

    python -m nnunet_ssp.seeding SEEDS_JSON SEED|random <the arguments of nnUNetv2_train>

`random` draws the seed from the operating system, so an unseeded run still records the seed it ran with and can
be repeated. SEEDS_JSON holds a list with one record per process that trained: a training continued with `--c`
adds one, a new training starts the list again. What stays non-deterministic: docs/guides/label_efficiency_benchmark.md.
"""

import json
import random
import secrets
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from nnunet_ssp.atomic import write_json

SEEDS_FILE = "seeds.json"
RANDOM = "random"
CONTINUE_FLAG = "--c"  # nnUNetv2_train's flag to continue a training from its checkpoint


def seed_everything(seed: int) -> None:
    """Seed Python's `random`, numpy's global generator and torch's generators (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def draw_seed() -> int:
    """A seed from the operating system's entropy, in the range every generator accepts."""
    return secrets.randbelow(2 ** 31)


def seeded_command(seeds_file: Path, seed: Optional[int], train_arguments: Sequence[str]) -> List[str]:
    """The command that runs `nnUNetv2_train <train_arguments>` seeded with `seed` (None: drawn at random)."""
    return [sys.executable, "-m", __name__, str(seeds_file), RANDOM if seed is None else str(seed),
            *train_arguments]


def seed_record(seed: int, chosen: bool, train_arguments: Sequence[str]) -> Dict:
    """What a seeded training records: the seed of each generator, how it was chosen, and the data-augmentation
    worker count (with workers, augmentation is not reproducible)."""
    from nnunetv2.utilities.default_n_proc_DA import get_allowed_n_proc_DA

    return {"python_random": seed, "numpy": seed, "torch": seed, "seed_source": "given" if chosen else "drawn",
            "data_augmentation_workers": get_allowed_n_proc_DA(), "nnUNetv2_train": list(train_arguments)}


def _previous_records(seeds_file: Path) -> List[Dict]:
    try:
        records = json.loads(seeds_file.read_text())
    except (OSError, ValueError):
        return []
    return records if isinstance(records, list) else []


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Seed, record, then hand over to nnU-Net's `run_training_entry` with the remaining arguments."""
    seeds_file, seed_text, *train_arguments = sys.argv[1:] if argv is None else argv
    chosen = seed_text != RANDOM
    seed = int(seed_text) if chosen else draw_seed()
    previous = _previous_records(Path(seeds_file)) if CONTINUE_FLAG in train_arguments else []
    write_json(previous + [seed_record(seed, chosen, train_arguments)], seeds_file)
    from nnunetv2.run.run_training import run_training_entry

    seed_everything(seed)
    sys.argv = ["nnUNetv2_train", *train_arguments]
    run_training_entry()


if __name__ == "__main__":
    main()
