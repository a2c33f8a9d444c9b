"""Each recipe against the baseline with the seed as the unit: a seed is one draw of labeled subjects and one
training, so the seeds, not the test cases, show how much a result moves when the training is done again.

Per seed, the mean Dice over the test cases (of the mean of structures); per recipe and size, the differences to
the baseline of the same seed and a two-sided sign-flip permutation test of their mean (scipy; exact up to 13
seeds). With k seeds no p can be below 2 / 2**k: 0.0625 with 5 seeds, 0.0078 with 8.
"""

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np

from nnunet_ssp.benchmark.grid import BASELINE
from nnunet_ssp.benchmark.results import ResultRow

PERMUTATIONS = 9999  # scipy's default; 2**13 = 8192 sign patterns fit, so up to 13 seeds the test is exact


@dataclass(frozen=True)
class SeedTest:
    """A recipe against the baseline at one size, paired over seeds."""
    method: str
    labeled_subjects: int
    differences: Tuple[float, ...]  # per seed in ascending order: recipe − baseline, each a mean over test cases
    seeds: Tuple[int, ...]
    p_value: float

    @property
    def mean_difference(self) -> float:
        """The mean of the per-seed differences."""
        return float(np.mean(self.differences))

    @property
    def seeds_above(self) -> int:
        """Seeds in which the recipe beat the baseline."""
        return sum(d > 0 for d in self.differences)


def seed_means(rows: Sequence[ResultRow], structure: str) -> Dict[Tuple[str, int, int], float]:
    """The mean Dice of `structure` over the test cases per (method, labeled subjects, seed), NaNs left out."""
    values = defaultdict(list)
    for r in rows:
        if r.structure == structure and not math.isnan(r.dice):
            values[r.method, r.labeled_subjects, r.seed].append(r.dice)
    return {key: float(np.mean(v)) for key, v in values.items()}


def seed_tests(rows: Sequence[ResultRow], structure: str) -> List[SeedTest]:
    """Every recipe against the baseline per size, over the seeds both have, for one structure."""
    from scipy.stats import permutation_test

    means = seed_means(rows, structure)
    methods = list(dict.fromkeys(method for method, _, _ in means))
    tests = []
    for method in methods:
        if method == BASELINE:
            continue
        for size in sorted({n for m, n, _ in means if m == method}):
            seeds = tuple(sorted(s for m, n, s in means if (m, n) == (method, size) and (BASELINE, n, s) in means))
            if not seeds:
                continue
            differences = tuple(means[method, size, s] - means[BASELINE, size, s] for s in seeds)
            if len(seeds) < 2 or not any(differences):
                p = math.nan
            else:
                p = float(permutation_test((np.array(differences),), np.mean, permutation_type="samples",
                                           n_resamples=PERMUTATIONS, alternative="two-sided",
                                           rng=np.random.default_rng(0)).pvalue)
            tests.append(SeedTest(method, size, differences, seeds, p))
    return tests

