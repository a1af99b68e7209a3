"""`crossprefill serve`: the warm engine over HTTP, so repeated compression costs the
work and not the start-up.

The server loads its drafts and targets once (in the background: `/healthz` answers
503 until they are ready) and serves

    POST /v1/compress   the library's compression; the answer is the CLI's --json report
    POST /v1/estimate   the `estimate` report for a list of keep rates
    POST /v1/expand     {"ref": ...}: the text a gap marker of a `refs` compression
                        stands for (from the server's reference store)
    GET  /healthz       200 once the drafts are loaded
    GET  /metrics       Prometheus text: requests by status, tokens, latency, queue length

through the one `job.Job` the command line runs (`warm.ServerModels.run`), so
a client prints byte for byte what local mode prints. Errors are `{"error": {"type",
"message"}}`: 400 a malformed request, 401 a missing or wrong key, 404 a draft or target
(`not_found`) or profile (`unknown_profile`) the server was not started with, 408 a
request head or body that does not come in time (`connections`, `wire.read_body`), 413 a
body over `max_bytes`, 422 unusable input or a budget below what must be kept, 503 busy
(with Retry-After) or not ready, 500 (one line) when the model code itself fails; the
server keeps serving. A message names the settings as a request does (`keep_rate`, not
the command line's `--keep-rate`), unless the request carries `settings.FLAGS_HEADER`
(the command line's `--server` client, which prints what local mode prints); the
server's own log, read by whoever started it, keeps the flags.

What the server holds (its options, drafts, targets) is `warm`; what it shares
with its proxy (errors on the wire, bodies, keys, turns at a draft, metrics) is
`wire`. The port is bound before anything loads, so a port in use is one line and
exit 1, and one line says when the server is ready. Binding anything but loopback needs
an API key, compared in constant time and never logged. SIGTERM and SIGINT stop
accepting, let running requests finish, and exit 0 (uvicorn's own shutdown); requests
still waiting for a draft get a 503 at once. `serving` runs the same app from a thread
instead, for as long as a block runs (`crossprefill wrap`, whose process keeps the
signals).

Starlette, uvicorn and prometheus_client are imported by these modules only, so the
local command line never pays for them.
"""

import asyncio
import contextlib
import copy
import ipaddress
import signal
import socket
import sys
import threading
import time
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from crossprefill_cli.apps.http.connections import DeadlineProtocol
from crossprefill_cli.apps.http.proxy import Proxy, check
from crossprefill_cli.apps.http.warm import ESTIMATE_FIELDS, FIELDS, ServerModels, ServerOptions
from crossprefill_cli.apps.http.wire import (LOG, RETRY_AFTER_SECONDS, HTTPError, Metrics,
                                             error_response, parse_json, read_body, same_key,
                                             take_turn, wants_flags)
from crossprefill_cli.errors import CrossprefillError, UsageError
from crossprefill_cli.models.loading import first_line
from crossprefill_cli.settings import by_fields

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
PROXIED_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_app(options: ServerOptions) -> Starlette:
    engine = ServerModels(options)
    metrics = Metrics()

    def check_key(request: Request) -> None:
        """Raise the 401 of a request without the server's key (when it has one)."""
        if options.api_key is None:
            return
        given = request.headers.get("authorization", "")
        token = given[7:] if given.lower().startswith("bearer ") else ""
        if not same_key(token, options.api_key):
            raise HTTPError(401, "unauthorized", "a valid API key is needed "
                            "(Authorization: Bearer KEY)")

    async def work(request: Request) -> Response:
        started = time.perf_counter()
        path = request.url.path
        flags = wants_flags(request)
        try:
            check_key(request)
            if not engine.ready.is_set():
                raise HTTPError(503, "not_ready", engine.failure or "the drafts are loading",
                                {"Retry-After": str(RETRY_AFTER_SECONDS)})
            body = validated(parse_json(await read_body(request, options.max_bytes)),
                             estimate=path.endswith("/estimate"))
            rates = body.get("keep_rates") if path.endswith("/estimate") else None
            lane = engine.lane(body.get("draft") or options.drafts[0])
            if not await take_turn(request, lane, options.max_queue, metrics):
                metrics.requests.labels(path, "499").inc()
                return Response(status_code=499)
            try:
                answer = await asyncio.to_thread(engine.run, body, rates, flags)
            finally:
                lane.lock.release()
            if rates is None:
                metrics.tokens_before.inc(answer["tokens_before"])
                metrics.tokens_after.inc(answer["tokens_after"])
            response: Response = JSONResponse(answer)
        except HTTPError as error:
            response = error_response(error, flags=flags)
        except ClientDisconnect:
            response = Response(status_code=499)
        except CrossprefillError as error:
            response = error_response(_http_error(error), flags=flags)
        except Exception as error:  # the model code failed: say so, keep serving
            response = error_response(HTTPError(500, "internal", first_line(error)), flags=flags)
        metrics.requests.labels(path, str(response.status_code)).inc()
        metrics.latency.labels(path).observe(time.perf_counter() - started)
        return response

    async def expand(request: Request) -> Response:
        try:
            check_key(request)
            body = parse_json(await read_body(request, options.max_bytes))
            if not isinstance(body, dict) or set(body) != {"ref"} \
                    or not isinstance(body["ref"], str):
                raise HTTPError(400, "bad_request", "the body must be {\"ref\": \"ID:START-END\"}")
            text = await asyncio.to_thread(engine.references.expand, body["ref"])
            response: Response = JSONResponse({"ref": body["ref"], "text": text})
        except HTTPError as error:
            response = error_response(error, flags=wants_flags(request))
        except CrossprefillError as error:
            response = error_response(_http_error(error), flags=wants_flags(request))
        metrics.requests.labels(request.url.path, str(response.status_code)).inc()
        return response

    async def healthz(request: Request) -> Response:
        if engine.ready.is_set():
            return JSONResponse({"status": "ready", "drafts": options.drafts,
                                 "targets": list(engine.targets)})
        return JSONResponse({"status": "failed" if engine.failure else "loading",
                             "error": engine.failure and by_fields(engine.failure)},
                            status_code=503)

    async def metrics_text(request: Request) -> Response:
        try:
            check_key(request)
        except HTTPError as error:
            return error_response(error)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        threading.Thread(target=engine.load, daemon=True).start()
        if options.proxy is None:
            yield
            return
        async with proxy.upstream.connected():
            yield

    routes = [Route("/v1/compress", work, methods=["POST"]),
              Route("/v1/estimate", work, methods=["POST"]),
              Route("/v1/expand", expand, methods=["POST"]),
              Route("/healthz", healthz), Route("/metrics", metrics_text)]
    if options.proxy is not None:
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
    if not is_loopback(host) and not options.api_key:
        raise UsageError(f"binding {host} (not loopback) needs --api-key or CROSSPREFILL_API_KEY")
    check_options(options)
    listening = listen(host, port)
    with LOG.to(options.log_file):
        _serve_here(options, listening, f"http://{_url_host(host)}:{listening.getsockname()[1]}")


def _serve_here(options: ServerOptions, listening: socket.socket, url: str) -> None:
    """`run`'s server on the bound socket, in this thread, until a stop signal."""
    app = create_app(options)
    forwarding = ""
    if options.proxy is not None:
        forwarding = f", forwarding /v1/ to {options.proxy.upstream}"
        if options.proxy.anthropic_upstream is not None:
            forwarding += f" (Anthropic's calls to {options.proxy.anthropic_upstream})"
    print(f"crossprefill: loading the drafts for {url}{forwarding}", file=sys.stderr, flush=True)
    threading.Thread(target=_say_when_settled, args=(app.state.engine, url), daemon=True).start()
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then raises the signal again for
    # the handler it found: a handler that ignores it lets the process exit 0
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in STOP_SIGNALS}
    try:
        _uvicorn(app, graceful_seconds=60).run(sockets=[listening])
    finally:
        listening.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class StoppingServer(uvicorn.Server):
    """uvicorn's server, which also tells the engine when a stop signal came: the
    requests waiting for a draft get a 503 at once, the running ones finish."""

    def __init__(self, config: uvicorn.Config, engine: ServerModels):
        super().__init__(config)
        self.engine = engine

    def handle_exit(self, sig: int, frame) -> None:
        self.engine.stopping.set()
        super().handle_exit(sig, frame)


def check_options(options: ServerOptions) -> None:
    """Raise `UsageError` for options no server can run with."""
    if options.max_queue < 0 or options.max_bytes < 1:
        raise UsageError("--max-queue must be 0 or more and --max-bytes positive")
    if options.proxy is not None:
        check(options.proxy)


@contextlib.contextmanager
def serving(options: ServerOptions, listening: socket.socket, graceful_seconds: float = 5):
    """Serve `options` (checked: `check_options`) on the bound socket `listening` from a
    thread while the block runs, the caller keeping the signals and the terminal;
    yields the app. At the end, requests still running get `graceful_seconds`."""
    with LOG.to(options.log_file):
        app = create_app(options)
        running = _uvicorn(app, graceful_seconds)
        thread = threading.Thread(target=running.run, kwargs={"sockets": [listening]},
                                  daemon=True)
        thread.start()
        try:
            yield app
        finally:
            running.should_exit = True
            thread.join(timeout=graceful_seconds + 5)
            listening.close()


def _uvicorn(app: Starlette, graceful_seconds: float) -> StoppingServer:
    """uvicorn's server for `app`, its log lines where the server's warnings go (`LOG`)."""
    logging = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    if LOG.path is not None:
        logging["handlers"]["default"] = {"class": "logging.FileHandler", "formatter": "default",
                                          "filename": str(LOG.path)}
    return StoppingServer(uvicorn.Config(app, log_level="warning", access_log=False,
                                         log_config=logging, http=DeadlineProtocol,
                                         timeout_graceful_shutdown=graceful_seconds),
                          app.state.engine)


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


def _say_when_settled(engine: ServerModels, url: str) -> None:
    """One line once the server answers (or cannot)."""
    engine.settled.wait()
    if engine.failure is None:
        print(f"crossprefill: ready on {url} (Ctrl-C stops)", file=sys.stderr, flush=True)
    else:
        print(f"crossprefill: error: {engine.failure} (the server answers 503 until it is "
              "stopped)", file=sys.stderr, flush=True)
