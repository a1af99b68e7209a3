"""Freed memory given back to the system after each draft read.

A read allocates and frees arrays of every size its input calls for (windows, key and
value caches, attention rows). glibc's allocator keeps what is freed inside its heaps
for reuse, and over distinct inputs of varied sizes those heaps fragment: a server's
resident memory rose by about 50 MiB over its first 400 distinct requests, and in one
process over 180 distinct inputs it rose 39 MiB, every byte of which one
`malloc_trim(0)` gave back; trimming after each read kept that process within 5 MiB
(docs/reliability.md). So the analysis calls `give_back()` after every read: a
long-lived server, batch or library loop does not keep what its reads freed, for about
2 ms against a read's tenths of a second. Where the C library has no `malloc_trim` (macOS, musl, Windows) it
does nothing.
"""

import ctypes
from functools import cache


@cache
def _malloc_trim():
    """glibc's `malloc_trim`, or None where the process's C library has none."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, TypeError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def give_back() -> None:
    """Return the free memory of every heap to the system (0 bytes of padding kept)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
