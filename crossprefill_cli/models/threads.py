"""How the draft's CPU threads wait for work, and how many there are.

torch's CPU build runs its parallel loops on GNU OpenMP. By default an OpenMP thread
that has finished its share spins for a while before it sleeps, which costs nothing
on an idle machine and a great deal on a shared one: when another process holds one of
two cores, the spinning threads compete with it and with each other for the core they
wait on (seen here: 2-5x slower than one thread, three times the CPU time). With the
passive wait policy an idle thread sleeps at once: on a busy machine two threads then
run about as fast as one (the share on the contested core finishes last), and on an
idle one as fast as spinning threads (`bench/threads.py` measures both).

`prefer_passive_waiting` must run before torch is first imported, because OpenMP reads
its environment when its library loads; it leaves alone a policy the user chose
(`OMP_WAIT_POLICY`, `GOMP_SPINCOUNT`). `usable_cores` is the thread count: the cores
this process may run on, not every core of the machine.

`one_blas_thread` holds numpy's BLAS to one thread while any torch-free draft reads
(`numpy_draft` says why); readers in several threads of one server share the limit,
which the last one to finish lifts.
"""

import contextlib
import os
import threading
from typing import Iterator

WAIT_POLICY_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def prefer_passive_waiting() -> None:
    if not any(name in os.environ for name in WAIT_POLICY_VARIABLES):
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_blas_lock = threading.Lock()
_blas_readers = 0
_blas_limit = None


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    global _blas_readers, _blas_limit
    with _blas_lock:
        if _blas_readers == 0:
            from threadpoolctl import threadpool_limits

            _blas_limit = threadpool_limits(1, user_api="blas")
        _blas_readers += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_readers -= 1
            if _blas_readers == 0:
                _blas_limit.restore_original_limits()
