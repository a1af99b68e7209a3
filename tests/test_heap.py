"""Freed memory given back after each draft read (`pipeline.heap`)."""

import numpy as np
import pytest

from crossprefill_cli import compress
from crossprefill_cli.models.cache import ScoreCache
from crossprefill_cli.pipeline import heap

BLOCK = 100_000  # bytes: under glibc's threshold for a mapping of its own, so in a heap


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


@pytest.mark.skipif(heap._malloc_trim() is None, reason="the C library has no malloc_trim")
def test_give_back_returns_the_free_memory_inside_a_heap():
    blocks = [np.ones(BLOCK // 8) for _ in range(1500)]  # 150 MB, every page touched
    del blocks[:-1]  # the last one stays, so the heap cannot shrink from its top
    freed = resident_bytes()
    heap.give_back()
    assert freed - resident_bytes() > 100_000_000


def test_each_draft_read_is_followed_by_a_give_back_and_a_cache_hit_reads_nothing(
        llama_draft, target, monkeypatch, tmp_path):
    cache = ScoreCache(tmp_path)
    calls = []
    monkeypatch.setattr(heap, "give_back", lambda: calls.append(1))
    text = "A note on heaps.\n" + "Falcons nest on cliffs and towers. " * 200 + "\nSummarise.\n"
    compress(text, draft=llama_draft, target=target, keep_rate=0.3, cache=cache)
    assert calls == [1]
    compress(text, draft=llama_draft, target=target, keep_rate=0.2, cache=cache)
    assert calls == [1]
