"""Chunk-scoring methods compared in the benchmarks.

Every method is a `pipeline.Scorer`: it gives each draft token an importance, and the
pipeline does the rest (same chunks, same target-token budget, same assembly), so the
methods differ only in *which* chunks they prefer.
"""

import math
import re
from collections import Counter

import numpy as np

from crossprefill_cli.pipeline import ScoringRequest, draft_scorer

STOPWORDS = set("""a an and are as at be by did do does for from has have how i in is it its
of on or that the this to was what when where which who whom why with you your""".split())
WORD = re.compile(r"[A-Za-z0-9_]+")


def random_scorer(seed: int):
    """Random chunk choice: every token a random importance (fixed seed per case)."""
    def score(draft, request: ScoringRequest) -> np.ndarray:
        return np.random.default_rng(seed).random(len(request.token_ids))
    return score


def lexical_scorer(draft, request: ScoringRequest) -> np.ndarray:
    """Query-word overlap weighted by inverse frequency in the input (BM25-like, no draft).

    Each occurrence of a query content word adds its IDF-like weight to the token where
    the word starts; a chunk's mean then ranks chunks by weighted overlap density.
    """
    importance = np.zeros(len(request.token_ids))
    if not request.query:
        return importance
    terms = {w.lower() for w in WORD.findall(request.query)} - STOPWORDS
    occurrences = [(m.start(), m.group().lower()) for m in WORD.finditer(request.text)]
    counts = Counter(word for _, word in occurrences)
    total = max(1, len(occurrences))
    for position, word in occurrences:
        if word in terms:
            token = int(np.searchsorted(request.token_starts, position, side="right")) - 1
            importance[max(token, 0)] += math.log(1 + total / counts[word])
    return importance


class MemoScorer:
    """The draft scorer, remembered per (text, query) so one case tries many budgets."""

    def __init__(self):
        self.memory: dict[tuple[int, str | None], np.ndarray] = {}

    def __call__(self, draft, request: ScoringRequest) -> np.ndarray:
        key = (hash(request.text), request.query)
        if key not in self.memory:
            self.memory[key] = draft_scorer(draft, request)
        return self.memory[key]
