"""Build the target tokenizer in a child process while the draft loads.

Building a target costs 0.3-0.5 s (o200k_base: tiktoken decodes 200k ranks and builds
its Rust BPE; a Hugging Face tokenizer: its JSON and the transformers import), all of
it holding the GIL, so a thread beside the draft's imports gains nothing. A second
process does: it builds the target on another core while this one imports torch, and
then counts tokens for it over a pipe (JSON lines: a list of texts in, their counts
out; a few round trips per compression, microseconds each next to the counting).

`start_target` returns a `PendingTarget` at once (or fails at once on a path to
nothing); `result()` waits for the child and gives a `TargetTokenizer` whose counts
come from it, or raises the child's `ModelLoadError`, so other bad targets are reported
after the draft has read the input. With one core there is nothing to overlap, and a
child that cannot start or dies loses nothing either: the target is then built in this
process. The child reads only its pipe and ends when the pipe closes.
"""

import json
import select
import subprocess
import sys
import threading
from typing import Sequence

from crossprefill_cli.errors import ModelLoadError
from crossprefill_cli.models.target import (DEFAULT_TARGET, TargetTokenizer, check_target_name,
                                            load_target)
from crossprefill_cli.models.threads import usable_cores

# The child imports exactly what this process would: it takes over this process's
# module path (the arguments after the spec) instead of starting with the working
# directory, which `-c` puts first (a user's own `tiktoken.py` there would shadow the
# real one). `sys` and `os` are loaded at start-up, so nothing is imported before the
# path is replaced.
# Once its pipe closes it leaves at once: Python's tidy exit frees the encoding's
# 200k tables one by one (30 ms of a core the next command in a pipeline wants).
_CHILD_MAIN = ("import os, sys\n"
               "sys.path[:] = sys.argv[2:]\n"
               f"from {__name__} import serve\n"
               "serve(sys.argv[1])\n"
               "os._exit(0)")


class PendingTarget:
    """A target being built; `spec` is what was asked for (None: the default target)."""

    def __init__(self, spec: str | None, child: subprocess.Popen | None):
        self.spec = spec
        self._child = child
        self._target: TargetTokenizer | None = None

    def result(self) -> TargetTokenizer:
        """The target, once built; raises `ModelLoadError` when it cannot be."""
        if self._target is None:
            self._target = self._from_child() or load_target(self.spec or DEFAULT_TARGET)
        return self._target

    def close(self) -> None:
        """End the child: one that has answered exits when its pipe closes; one still
        building (this run failed early, say) is stopped rather than waited for. Its
        exit is awaited by a thread of its own, which this process does not wait for."""
        if self._child is None:
            return
        child, self._child = self._child, None
        if self._target is None:
            child.kill()
        try:
            child.stdin.close()
        except OSError:
            pass
        threading.Thread(target=_reap, args=(child,), daemon=True).start()

    def ready(self) -> bool:
        """Whether `result()` would return at once (the child has answered or is gone)."""
        if self._target is not None or self._child is None:
            return True
        return bool(select.select([self._child.stdout], [], [], 0)[0])

    def __enter__(self) -> "PendingTarget":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _from_child(self) -> TargetTokenizer | None:
        if self._child is None:
            return None
        reply = self._exchange(None)
        if reply is None:
            self.close()
            return None
        if "error" in reply:
            self.close()
            raise ModelLoadError(reply["error"])
        return TargetTokenizer(reply["name"], self._count_batch)

    def _count_batch(self, texts: Sequence[str]) -> list[int]:
        counts = self._exchange(list(texts))
        if counts is None:
            raise ModelLoadError("the target tokenizer's process ended unexpectedly")
        return counts

    def _exchange(self, message: list[str] | None):
        """Send a message (none: just read), return the child's reply or None if it is gone."""
        child = self._child
        if child is None:
            return None
        try:
            if message is not None:
                child.stdin.write(json.dumps(message, ensure_ascii=False).encode() + b"\n")
                child.stdin.flush()
            return json.loads(child.stdout.readline())
        except (OSError, ValueError):  # gone (EOF reads as invalid JSON) or garbled
            return None


def _reap(child: subprocess.Popen) -> None:
    try:
        child.wait(timeout=5)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def start_target(spec: str | None) -> PendingTarget:
    """Start building the target `spec` (None: the default) in a child process; a path
    to nothing fails here and now."""
    if spec is not None:
        check_target_name(spec)
    if usable_cores() < 2:
        return PendingTarget(spec, None)
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD_MAIN, spec or DEFAULT_TARGET, *sys.path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError:
        return PendingTarget(spec, None)
    return PendingTarget(spec, child)


def serve(spec: str) -> None:
    """The child: build the target, say its name (or the error), then count on request."""
    replies = sys.stdout.buffer
    sys.stdout = sys.stderr  # whatever a library prints must not garble the replies
    try:
        target = load_target(spec)
        first = {"name": target.name}
    except ModelLoadError as error:
        target, first = None, {"error": str(error)}
    replies.write(json.dumps(first).encode() + b"\n")
    replies.flush()
    if target is None:
        return
    for line in sys.stdin.buffer:
        replies.write(json.dumps(target.count_batch(json.loads(line))).encode() + b"\n")
        replies.flush()
