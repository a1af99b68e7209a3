"""Freed memory given back after each draft read, one arena for all threads
(`pipeline.heap`)."""

import subprocess
import sys

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


ARENAS = """
import ctypes, os, sys, tempfile, threading
import numpy as np
import crossprefill_cli.pipeline.heap as heap
if sys.argv[1] == "one":
    heap.one_arena()
held, started = [], threading.Barrier(4)
def allocate():
    started.wait()  # all four alive at once, so none inherits another's arena
    held.extend(np.ones(8000) for _ in range(50))  # 64 KB each: from the thread's heap
threads = [threading.Thread(target=allocate) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc = ctypes.CDLL(None)
libc.fopen.restype, libc.fopen.argtypes = ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes, libc.fclose.argtypes = [ctypes.c_int, ctypes.c_void_p], [ctypes.c_void_p]
path = os.path.join(tempfile.mkdtemp(), "info.xml")
stream = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, stream)
libc.fclose(stream)
print(open(path).read().count("<heap nr="))
"""


@pytest.mark.skipif(heap._malloc_trim() is None, reason="not glibc")
def test_one_arena_keeps_new_threads_on_the_heaps_there_are():
    def arenas(variant: str) -> int:
        done = subprocess.run([sys.executable, "-c", ARENAS, variant], capture_output=True,
                              text=True, timeout=60, check=True)
        return int(done.stdout)

    assert arenas("one") == 1
    assert arenas("default") >= 4  # the threads' own, besides the main heap


def test_the_command_line_asks_for_one_arena_before_anything_else(monkeypatch):
    from crossprefill_cli.apps.cli import commands

    calls = []
    monkeypatch.setattr(heap, "one_arena", lambda: calls.append("one arena"))
    monkeypatch.setattr(commands, "app", lambda **_: calls.append("command"))
    with pytest.raises(SystemExit):
        commands.main()
    assert calls == ["one arena", "command"]
