"""What the HTTP front ends share: errors on the wire, request bodies, keys, turns at
the drafts, metrics.

`serve` (the compression endpoints) and its proxy (`proxy`) both answer HTTP with the
same conventions, so they take them from here rather than from each other: an error is
`{"error": {"type", "message"}}` with its status (the message naming settings as a
request does, by field: `keep_rate`, not the command line's `--keep-rate`), a body over the limit is a 413 as soon
as it is, keys are compared in constant time, a draft runs one request at a time while
a bounded queue waits (a full queue is a 503 at once, a client that leaves is dropped),
Prometheus counts it all, and a warning for whoever runs the server is one line on its
stderr, or in its log file (`warn`, `ServerLog`).
"""

import asyncio
import contextlib
import hmac
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator, TextIO

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.requests import Request
from starlette.responses import JSONResponse

from crossprefill_cli.errors import CrossprefillError
from crossprefill_cli.settings import FLAGS_HEADER, by_fields

RETRY_AFTER_SECONDS = 1
DISCONNECT_POLL_SECONDS = 0.1
BODY_IDLE_SECONDS = 30.0
# A body gets BODY_IDLE_SECONDS and a second more for each MIN_BODY_RATE bytes that came
# (Apache's mod_reqtimeout rule), so a client trickling bytes holds its connection for a
# bounded time too; any client on a network sends much faster.
MIN_BODY_RATE = 10_000


class HTTPError(Exception):
    def __init__(self, status: int, kind: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.kind, self.headers = status, kind, headers or {}


def error_response(error: HTTPError, *, flags: bool = False) -> JSONResponse:
    """The error's answer, its message naming settings by field, or with `flags` by flag
    (for a command-line client, `settings.FLAGS_HEADER`)."""
    message = str(error) if flags else by_fields(str(error))
    return JSONResponse({"error": {"type": error.kind, "message": message}},
                        status_code=error.status, headers=error.headers)


def wants_flags(request: Request) -> bool:
    """Whether a command-line client asks for messages that name settings by flag."""
    return request.headers.get(FLAGS_HEADER) == "flags"


class ServerLog:
    """Where the server's own lines go (its warnings; uvicorn's errors follow `path`):
    stderr, or a file they are appended to (`--log-file`), away from the terminal that a
    full-screen program beside the server draws on (wrap's COMMAND). It counts the
    warnings, for wrap's summary."""

    def __init__(self):
        self.path: Path | None = None
        self.warnings = 0
        self._file: TextIO | None = None
        self._lock = threading.Lock()

    def warning(self, message: str) -> None:
        with self._lock:
            self.warnings += 1
            print(f"crossprefill: warning: {message}", file=self._file or sys.stderr,
                  flush=True)

    @contextlib.contextmanager
    def to(self, path: str | None) -> Iterator[None]:
        """The lines go to `path` (None: stderr) while the block runs; its folder is made,
        and a file that cannot be written is a `CrossprefillError` before anything runs."""
        if path is None:
            yield
            return
        target = Path(path).expanduser()
        try:
            if not target.parent.exists():
                target.parent.mkdir(parents=True)
            handle = open(target, "a", encoding="utf-8", buffering=1)
        except OSError as error:
            raise CrossprefillError(f"cannot write the log file {path}: "
                                    f"{error.strerror or error}") from None
        with self._lock:
            self.path, self._file = target, handle
        try:
            yield
        finally:
            with self._lock:
                self.path, self._file = None, None
            handle.close()


# the process's server log: one server runs in a process
LOG = ServerLog()


def warn(message: str) -> None:
    """A warning on the server's log (`LOG`), read by whoever started it."""
    LOG.warning(message)


def same_key(given: str, key: str) -> bool:
    """Whether `given` is the API key, compared in constant time."""
    return hmac.compare_digest(given.encode(), key.encode())


class Lane:
    """One draft's turn-taking: a lock, how many requests wait for it, and the server's
    `stopping` event (set: the waiting get a 503, the running finish)."""

    def __init__(self, stopping: threading.Event | None = None):
        self.lock = asyncio.Lock()
        self.waiting = 0
        self.stopping = stopping or threading.Event()


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("crossprefill_requests", "Requests by path and status",
                                ["path", "status"], registry=self.registry)
        self.tokens_before = Counter("crossprefill_tokens_before", "Target tokens received",
                                     registry=self.registry)
        self.tokens_after = Counter("crossprefill_tokens_after", "Target tokens returned",
                                    registry=self.registry)
        self.latency = Histogram("crossprefill_request_seconds", "Time to answer a request",
                                 ["path"], registry=self.registry)
        self.tokens_saved = Counter("crossprefill_tokens_saved", "Target tokens the proxy "
                                    "took out of requests", registry=self.registry)
        self.expansions = Counter("crossprefill_proxy_expansions", "Omitted texts the proxy "
                                  "gave back to a model that called its expand tool",
                                  registry=self.registry)
        self.bypassed = Counter("crossprefill_proxy_bypassed", "Requests the proxy forwarded "
                                "uncompressed though they had long texts", ["reason"],
                                registry=self.registry)
        self.queue = Gauge("crossprefill_queue_length", "Requests waiting for a draft",
                           registry=self.registry)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request's body, or a 413 as soon as it is over `max_bytes`, or a 408 when the
    client sends nothing for `BODY_IDLE_SECONDS` or sends too slowly (`MIN_BODY_RATE`):
    a slow client holds no connection for ever."""
    declared = request.headers.get("content-length")
    too_large = HTTPError(413, "too_large", f"the request body is over the limit of "
                          f"{max_bytes:,} bytes")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    data = bytearray()
    pieces = request.stream().__aiter__()
    started = time.monotonic()
    while True:
        left = started + BODY_IDLE_SECONDS + len(data) / MIN_BODY_RATE - time.monotonic()
        try:
            piece = await asyncio.wait_for(pieces.__anext__(), max(0.0, min(BODY_IDLE_SECONDS,
                                                                             left)))
        except StopAsyncIteration:
            return bytes(data)
        except asyncio.TimeoutError:
            if left > BODY_IDLE_SECONDS or not data:
                raise HTTPError(408, "timeout", f"the request body stalled: nothing came "
                                f"for {BODY_IDLE_SECONDS:g} s") from None
            raise HTTPError(408, "timeout", f"the request body came too slowly: {len(data):,} "
                            f"bytes in {time.monotonic() - started:.0f} s (it gets "
                            f"{BODY_IDLE_SECONDS:g} s and a second for each "
                            f"{MIN_BODY_RATE:,} bytes)") from None
        data += piece
        if len(data) > max_bytes:
            raise too_large


def parse_json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise HTTPError(400, "bad_request", "the request body is not JSON") from None


async def take_turn(request: Request, lane: Lane, max_queue: int, metrics: "Metrics") -> bool:
    """Wait for the draft's lock; False when the client went away meanwhile, a 503 at
    once when `max_queue` requests wait already, and when the server is stopping."""
    stopping = HTTPError(503, "stopping", "the server is shutting down; try again shortly",
                         {"Retry-After": str(RETRY_AFTER_SECONDS)})
    if lane.stopping.is_set():
        raise stopping
    if lane.lock.locked() and lane.waiting >= max_queue:
        raise HTTPError(503, "busy", "the server is busy; try again shortly",
                        {"Retry-After": str(RETRY_AFTER_SECONDS)})
    lane.waiting += 1
    metrics.queue.inc()
    acquiring = asyncio.ensure_future(lane.lock.acquire())
    try:
        while True:
            done, _ = await asyncio.wait({acquiring}, timeout=DISCONNECT_POLL_SECONDS)
            if done:
                return True
            gone = await request.is_disconnected()
            if gone or lane.stopping.is_set():
                acquiring.cancel()
                await asyncio.gather(acquiring, return_exceptions=True)
                if acquiring.done() and not acquiring.cancelled():
                    lane.lock.release()
                if not gone:
                    raise stopping
                return False
    finally:
        lane.waiting -= 1
        metrics.queue.dec()
