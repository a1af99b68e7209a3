"""Freed memory given back to the system after each draft read, and one heap for all
threads.

A read allocates and frees arrays of every size its input calls for (windows, key and
value caches, attention rows). glibc's allocator keeps what is freed inside its heaps
for reuse, and over distinct inputs of varied sizes those heaps fragment: a server's
resident memory rose by about 50 MiB over its first 400 distinct requests, and in one
process over 180 distinct inputs it rose 39 MiB, every byte of which one
`malloc_trim(0)` gave back; trimming after each read kept that process within 5 MiB
(docs/reliability.md). So the analysis calls `give_back()` after every read: a
long-lived server, batch or library loop does not keep what its reads freed, for about
2 ms against a read's tenths of a second.

That was not all of it: through `serve`, after those give-backs, resident memory still
rose about 55 MiB over 400 distinct requests. glibc gives each new thread an arena (a
heap of its own; up to 8 per core), and a server's work moves between threads (the
event loop's worker threads, the numpy engine's): every arena fragments with what its
threads left behind, and a trim frees only whole free pages. Two servers side by side
over the same distinct requests: the one limited to one arena held 225-235 MiB from its
60th request to its 156th, the other rose from 266 to about 300 MiB, and answered fewer
in the same time (146 to 156; docs/reliability.md). Python's own small objects never
come from glibc's arenas and the draft's threads allocate seldom, in large pieces, so
they hardly contend for the one. `one_arena()` sets that limit; the command line calls
it first thing (serve, the proxy, batch, the MCP server), and batch's Ray workers start
with `MALLOC_ARENA_MAX=1`. A library call does not: the allocator is its host's to set.

Where the C library has no `malloc_trim` or `mallopt` (macOS, musl, Windows) both do
nothing.
"""

import ctypes
from functools import cache

M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)


@cache
def _libc_function(name: str, *argtypes):
    """The C library's function `name` (returning an int), or None where it has none."""
    try:
        function = getattr(ctypes.CDLL(None), name)
    except (OSError, TypeError, AttributeError):
        return None
    function.argtypes, function.restype = list(argtypes), ctypes.c_int
    return function


def _malloc_trim():
    return _libc_function("malloc_trim", ctypes.c_size_t)


def give_back() -> None:
    """Return the free memory of every heap to the system (0 bytes of padding kept)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def one_arena() -> None:
    """Have every thread made from now on allocate from the heaps that exist already
    (the main one, in a process that has started no threads yet)."""
    mallopt = _libc_function("mallopt", ctypes.c_int, ctypes.c_int)
    if mallopt is not None:
        mallopt(M_ARENA_MAX, 1)
