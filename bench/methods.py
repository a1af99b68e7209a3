"""What the benchmarks compare besides the pipeline's own scorers, and their score cache.

The pipeline's scorers are named (`scorer="evidence"`, `"attention"`, `"lexical"`,
`"surprise"`); a baseline here is a `pipeline.Scorer`, a function giving each draft
token an importance, and the pipeline does the rest (same chunks, same target-token
budget, same assembly), so the methods differ only in *which* chunks they prefer.
"""

import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from crossprefill_cli.models.cache import ScoreCache
from crossprefill_cli.pipeline.analysis import ScoringRequest


def random_scorer(seed: int):
    """Random chunk choice: every token a random importance (fixed seed per case)."""
    def score(draft, request: ScoringRequest) -> np.ndarray:
        return np.random.default_rng(seed).random(len(request.token_ids))
    return score


@lru_cache(maxsize=1)
def bench_cache() -> ScoreCache:
    """One score cache per benchmark run, in a temporary folder: a case's draft reading
    serves every scorer and keep rate tried on it."""
    return ScoreCache(Path(tempfile.mkdtemp(prefix="crossprefill-bench-")))
