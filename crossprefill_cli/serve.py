"""`crossprefill serve`: the warm engine over HTTP, so repeated compression costs the
work and not the start-up.

The server loads its drafts and targets once (in the background: `/healthz` answers
503 until they are ready) and serves

    POST /v1/compress   the library's compression; the answer is the CLI's --json report
    POST /v1/estimate   the `estimate` report for a list of keep rates
    GET  /healthz       200 once the drafts are loaded
    GET  /metrics       Prometheus text: requests by status, tokens, latency, queue length

through the same library calls the command line makes (`pipeline.read_format`,
`analyse`, `finish`, `product`, `report`), so a client prints byte for byte what local
mode prints. Errors are `{"error": {"type", "message"}}`: 400 a malformed request, 401 a
missing or wrong key, 404 a draft or target (`not_found`) or profile (`unknown_profile`)
the server was not started with, 413 a body over `max_bytes`, 422 unusable input or a budget below what must be kept, 503
busy (with Retry-After) or not ready, 500 (one line) when the model code itself fails;
the server keeps serving.

One draft runs one request at a time, in a worker thread; the others wait in a bounded
queue (`max_queue`): a full queue answers 503 at once, and a client that disconnects
while it waits is dropped. A request may name only what the server was started with
(drafts, targets, built-in profiles and the started one), unless `allow_any_draft`;
a target is found by the name local mode resolves (`gpt-4o` is served by `o200k_base`).
The port is bound before anything loads, so a port in use is one line and exit 1, and
one line says when the server is ready. Binding anything but loopback needs an API key, compared in constant time and never
logged. SIGTERM and SIGINT stop accepting, let running requests finish, and exit 0
(uvicorn's own shutdown).

Starlette, uvicorn and prometheus_client are imported by this module only, so the
local command line never pays for them.
"""

import asyncio
import contextlib
import hmac
import ipaddress
import json
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import generate_latest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .cache import ScoreCache
from .errors import CrossprefillError, UsageError
from .loading import BUILTIN, first_line
from .job import Job
from .pipeline import DraftSource, resolve_target
from .profiles import builtin_names, load_profile
from .results import report
from .settings import MACHINE_FIELDS, SETTINGS, Settings, json_types
from .source import MAX_INPUT_BYTES
from .target import DEFAULT_TARGET, TargetTokenizer, tiktoken_encoding, tiktoken_label

RETRY_AFTER_SECONDS = 1
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
DISCONNECT_POLL_SECONDS = 0.1
ESTIMATE_FIELDS = {"keep_rates": (list,), "context_window": (int, type(None)),
                   "price_per_mtok": (int, float, type(None)), "must_keep": (list,)}
# request fields and the JSON types each may have (None: may be null): the input, every
# setting but the machine's (the server's own), and what /v1/estimate asks besides
FIELDS: dict[str, tuple[type, ...]] = {
    "text": (str,), "messages": (list, dict),
    **{setting.name: json_types(setting.type) for setting in SETTINGS
       if setting.name not in MACHINE_FIELDS}, **ESTIMATE_FIELDS}
REQUEST_SETTINGS = set(FIELDS) - {"text", "messages"} - set(ESTIMATE_FIELDS)
PROXIED_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


class HTTPError(Exception):
    def __init__(self, status: int, kind: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.kind, self.headers = status, kind, headers or {}


def error_response(error: HTTPError) -> JSONResponse:
    return JSONResponse({"error": {"type": error.kind, "message": str(error)}},
                        status_code=error.status, headers=error.headers)


def same_key(given: str, key: str) -> bool:
    """Whether `given` is the API key, compared in constant time."""
    return hmac.compare_digest(given.encode(), key.encode())


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class ServerOptions:
    drafts: list[str] = field(default_factory=lambda: [BUILTIN])
    targets: list[str] = field(default_factory=list)  # empty: the default target
    profile: str = "text"
    api_key: str | None = None
    max_queue: int = 4
    max_bytes: int = MAX_INPUT_BYTES
    allow_any_draft: bool = False
    device: str = "auto"
    dtype: str = "auto"
    proxy: Any = None  # a `proxy.ProxyOptions`: also forward LLM API calls upstream


class Lane:
    """One draft's turn-taking: a lock, and how many requests wait for it."""

    def __init__(self):
        self.lock = asyncio.Lock()
        self.waiting = 0


class Engine:
    """The loaded drafts and targets, and the work one request asks for."""

    def __init__(self, options: ServerOptions):
        self.options = options
        self.sources: dict[str, DraftSource] = {}
        self.targets: dict[str, tuple[TargetTokenizer, list[str]]] = {}
        self.lanes: dict[str, Lane] = {}
        self.ready = threading.Event()  # loaded: requests are answered
        self.settled = threading.Event()  # loaded, or failed with `failure`
        self.failure: str | None = None
        self.cache = ScoreCache()
        self.profile = load_profile(options.profile)  # the one named at start, maybe a file
        self.profiles = set(builtin_names()) | {self.profile.name}

    def load(self) -> None:
        """Load every draft and target (run in a thread at start-up)."""
        try:
            for name in self.options.drafts:
                self._load_draft(name)
            default = self.sources[self.options.drafts[0]]
            mapped = [spec for _, spec in self.options.proxy.target_map] if self.options.proxy else []
            for name in [*(self.options.targets or [None]), *mapped]:
                self._load_target(name, default)
            self.ready.set()
        except CrossprefillError as error:
            self.failure = str(error)
        finally:
            self.settled.set()

    def _load_draft(self, name: str) -> DraftSource:
        source = DraftSource(name, device=self.options.device, dtype=self.options.dtype)
        source.load()
        self.sources[name] = source
        return source

    def _load_target(self, name: str | None, source: DraftSource) -> TargetTokenizer:
        warnings: list[str] = []
        counter = resolve_target(name, source, warnings.append)
        self.targets[name or DEFAULT_TARGET] = (counter, warnings)
        return counter

    def target(self, name: str) -> TargetTokenizer:
        """The target called `name`, loaded now if it is not yet (`ModelLoadError`)."""
        if name in self.targets or self._alias_target(name):
            return self.targets[name][0]
        return self._load_target(name, self.sources[self.options.drafts[0]])

    def _alias_target(self, name: str) -> bool:
        """Serve `name` with a loaded target of the same tiktoken encoding (`gpt-4o` with
        `o200k_base`), labelled as local mode labels it; False when none is loaded. A
        default target standing in for an encoding it could not load is no such target."""
        encoding = tiktoken_encoding(name)
        for served, (counter, warnings) in list(self.targets.items()):
            if encoding is not None and not warnings and tiktoken_encoding(served) == encoding:
                self.targets[name] = (TargetTokenizer(tiktoken_label(name, encoding),
                                                      counter.count_batch), [])
                return True
        return False

    def lane(self, draft: str) -> Lane:
        return self.lanes.setdefault(draft, Lane())

    def resolve(self, body: dict) -> tuple[DraftSource, TargetTokenizer, list[str]]:
        draft = body.get("draft") or self.options.drafts[0]
        target = body.get("target") or (self.options.targets or [DEFAULT_TARGET])[0]
        if draft not in self.sources:
            if not self.options.allow_any_draft:
                raise HTTPError(404, "not_found", f"this server has no draft {draft!r}; it "
                                f"serves {', '.join(self.options.drafts)}")
            self._load_draft(draft)
        if target not in self.targets and not self._alias_target(target):
            if not self.options.allow_any_draft:
                raise HTTPError(404, "not_found", f"this server has no target {target!r}; it "
                                f"serves {', '.join(self.targets)}")
            self._load_target(target, self.sources[draft])
        profile = body.get("profile") or self.profile.name
        if profile not in self.profiles:
            raise HTTPError(404, "unknown_profile", f"this server has no profile {profile!r}; it "
                            f"serves {', '.join(sorted(self.profiles))}")
        counter, warnings = self.targets[target]
        return self.sources[draft], counter, warnings

    def run(self, body: dict, estimate_rates: list[float] | None) -> dict:
        """The report one request asks for (runs in the draft's worker thread)."""
        source, counter, target_warnings = self.resolve(body)
        text = body.get("text")
        asked = {name: value for name, value in body.items() if name in REQUEST_SETTINGS}
        if text is None:
            text, asked["format"] = json.dumps(body["messages"], ensure_ascii=False), "messages"
        settings = Settings(**asked)
        profile = settings.profile or self.profile.name
        job = Job(replace(settings, profile=profile), draft=source, target=counter,
                  cache=self.cache, profile=self.profile if profile == self.profile.name else None)
        if estimate_rates is not None:
            answer = job.estimate(job.analyse(text, with_budget=False), estimate_rates,
                                  context_window=body.get("context_window"),
                                  price_per_mtok=body.get("price_per_mtok"),
                                  must_keep=body.get("must_keep", []))
            answer["warnings"][:0] = target_warnings
            return answer
        done = job.compress(text)
        done.result.warnings[:0] = target_warnings
        return report(done.result, done.conversation, done.printed)


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
        self.bypassed = Counter("crossprefill_proxy_bypassed", "Requests the proxy forwarded "
                                "uncompressed though they had long texts", ["reason"],
                                registry=self.registry)
        self.queue = Gauge("crossprefill_queue_length", "Requests waiting for a draft",
                           registry=self.registry)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request's body, or a 413 as soon as it is over `max_bytes`."""
    declared = request.headers.get("content-length")
    too_large = HTTPError(413, "too_large", f"the request body is over the limit of "
                          f"{max_bytes:,} bytes")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    data = bytearray()
    async for piece in request.stream():
        data += piece
        if len(data) > max_bytes:
            raise too_large
    return bytes(data)


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise HTTPError(400, "bad_request", "the request body is not JSON") from None


async def take_turn(request: Request, lane: Lane, max_queue: int, metrics: "Metrics") -> bool:
    """Wait for the draft's lock; False when the client went away meanwhile, a 503 at
    once when `max_queue` requests wait already."""
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
            if await request.is_disconnected():
                acquiring.cancel()
                await asyncio.gather(acquiring, return_exceptions=True)
                if acquiring.done() and not acquiring.cancelled():
                    lane.lock.release()
                return False
    finally:
        lane.waiting -= 1
        metrics.queue.dec()


def create_app(options: ServerOptions) -> Starlette:
    engine = Engine(options)
    metrics = Metrics()

    def authorised(request: Request) -> bool:
        if options.api_key is None:
            return True
        given = request.headers.get("authorization", "")
        token = given[7:] if given.lower().startswith("bearer ") else ""
        return same_key(token, options.api_key)

    async def work(request: Request) -> Response:
        started = time.perf_counter()
        path = request.url.path
        try:
            if not authorised(request):
                raise HTTPError(401, "unauthorized", "a valid API key is needed "
                                "(Authorization: Bearer KEY)")
            if not engine.ready.is_set():
                raise HTTPError(503, "not_ready", engine.failure or "the drafts are loading",
                                {"Retry-After": str(RETRY_AFTER_SECONDS)})
            body = validated(_json(await read_body(request, options.max_bytes)),
                             estimate=path.endswith("/estimate"))
            rates = body.get("keep_rates") if path.endswith("/estimate") else None
            lane = engine.lane(body.get("draft") or options.drafts[0])
            if not await take_turn(request, lane, options.max_queue, metrics):
                metrics.requests.labels(path, "499").inc()
                return Response(status_code=499)
            try:
                answer = await asyncio.to_thread(engine.run, body, rates)
            finally:
                lane.lock.release()
            if rates is None:
                metrics.tokens_before.inc(answer["tokens_before"])
                metrics.tokens_after.inc(answer["tokens_after"])
            response: Response = JSONResponse(answer)
        except HTTPError as error:
            response = error_response(error)
        except ClientDisconnect:
            response = Response(status_code=499)
        except CrossprefillError as error:
            response = error_response(_http_error(error))
        except Exception as error:  # the model code failed: say so, keep serving
            response = error_response(HTTPError(500, "internal", first_line(error)))
        metrics.requests.labels(path, str(response.status_code)).inc()
        metrics.latency.labels(path).observe(time.perf_counter() - started)
        return response

    async def healthz(request: Request) -> Response:
        if engine.ready.is_set():
            return JSONResponse({"status": "ready", "drafts": options.drafts,
                                 "targets": list(engine.targets)})
        return JSONResponse({"status": "failed" if engine.failure else "loading",
                             "error": engine.failure}, status_code=503)

    async def metrics_text(request: Request) -> Response:
        if not authorised(request):
            return error_response(HTTPError(401, "unauthorized", "a valid API key is needed"))
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        threading.Thread(target=engine.load, daemon=True).start()
        if options.proxy is None:
            yield
            return
        async with proxy.connected():
            yield

    routes = [Route("/v1/compress", work, methods=["POST"]),
              Route("/v1/estimate", work, methods=["POST"]),
              Route("/healthz", healthz), Route("/metrics", metrics_text)]
    if options.proxy is not None:
        from .proxy import Proxy

        proxy = Proxy(options.proxy, engine, metrics, options)
        routes.append(Route("/v1/{rest:path}", proxy.handle, methods=PROXIED_METHODS))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.engine = engine
    app.state.proxy = proxy if options.proxy is not None else None
    return app


def _http_error(error: CrossprefillError) -> HTTPError:
    return HTTPError(error.http_status, error.wire_type, str(error))


def validated(body: Any, *, estimate: bool) -> dict:
    """The request body, checked: an object of known fields of the right JSON types."""
    if not isinstance(body, dict):
        raise HTTPError(400, "bad_request", "the request body must be a JSON object")
    allowed = set(FIELDS) if estimate else set(FIELDS) - set(ESTIMATE_FIELDS)
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise HTTPError(400, "bad_request", f"unknown field(s): {', '.join(unknown)}")
    for name, value in body.items():
        kinds = FIELDS[name]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise HTTPError(400, "bad_request", f"field {name!r} has the wrong type")
    if ("text" in body) == ("messages" in body):
        raise HTTPError(400, "bad_request", "give exactly one of 'text' and 'messages'")
    if estimate and not all(isinstance(r, (int, float)) and not isinstance(r, bool)
                            for r in body.get("keep_rates", [])):
        raise HTTPError(400, "bad_request", "'keep_rates' must be a list of numbers")
    if estimate and "keep_rates" not in body:
        raise HTTPError(400, "bad_request", "'keep_rates' is required")
    if not all(isinstance(s, str) for s in body.get("must_keep", [])):
        raise HTTPError(400, "bad_request", "'must_keep' must be a list of strings")
    return body


def run(options: ServerOptions, *, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT (raise `UsageError` for an unsafe bind)."""
    import uvicorn

    if not is_loopback(host) and not options.api_key:
        raise UsageError(f"binding {host} (not loopback) needs --api-key or CROSSPREFILL_API_KEY")
    if options.max_queue < 0 or options.max_bytes < 1:
        raise UsageError("--max-queue must be 0 or more and --max-bytes positive")
    if options.proxy is not None:
        from .proxy import check

        check(options.proxy)
    listening = listen(host, port)
    url = f"http://{_url_host(host)}:{listening.getsockname()[1]}"
    app = create_app(options)
    forwarding = f", forwarding /v1/ to {options.proxy.upstream}" if options.proxy else ""
    print(f"crossprefill: loading the drafts for {url}{forwarding}", file=sys.stderr, flush=True)
    threading.Thread(target=_say_when_settled, args=(app.state.engine, url), daemon=True).start()
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then raises the signal again for
    # the handler it found: a handler that ignores it lets the process exit 0
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in STOP_SIGNALS}
    try:
        config = uvicorn.Config(app, log_level="warning", access_log=False,
                                timeout_graceful_shutdown=60)
        uvicorn.Server(config).run(sockets=[listening])
    finally:
        listening.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to `host:port` (port 0: any free one), or a `CrossprefillError`
    saying why not, before anything is printed or loaded."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        listening = socket.socket(family, socket.SOCK_STREAM)
    except OSError as error:
        raise CrossprefillError(f"cannot listen on {host}:{port} ({first_line(error)})") from None
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((host, port))
        listening.listen(2048)
    except OSError as error:
        listening.close()
        reason = error.strerror or first_line(error)
        raise CrossprefillError(f"cannot listen on {host}:{port}: {reason}") from None
    listening.set_inheritable(True)
    return listening


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _say_when_settled(engine: Engine, url: str) -> None:
    """One line once the server answers (or cannot)."""
    engine.settled.wait()
    if engine.failure is None:
        print(f"crossprefill: ready on {url} (Ctrl-C stops)", file=sys.stderr, flush=True)
    else:
        print(f"crossprefill: error: {engine.failure} (the server answers 503 until it is "
              "stopped)", file=sys.stderr, flush=True)
