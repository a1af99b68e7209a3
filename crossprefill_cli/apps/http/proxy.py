"""The compression proxy: `crossprefill serve --upstream URL` in front of an LLM API.

A client that speaks OpenAI's chat completions (or Anthropic's messages) points its base
URL here; every call under `/v1/` goes upstream and the upstream's answer comes back as
it is: status, headers, body, server-sent events relayed as they arrive (`upstream`).

On `POST /v1/chat/completions`, `POST /v1/messages` and `POST /v1/responses`, before
forwarding, each long text that may be compressed (`chat_requests`: tool results and
user documents by default, never a system message or the last user turn) and is over
`min_tokens` target tokens is replaced by its compression at the keep rate, steered by
the last user turn; each text on its own, counted in the target the request's `model`
names, and from a memo when it was seen lately (`compressor`). The body is re-serialised
only when a text changed; every other field is left exactly as it came.

Fail-open: when compression cannot happen (the drafts are loading, the draft is busy,
the model code fails), the original request goes upstream and a warning is logged;
`fail_closed` answers 503 or 502 instead. A text whose compression is refused (a budget
below its required parts, unusable text) is forwarded whole. The answer carries
`X-Crossprefill` (compressed, unchanged, off, bypassed) and, for chat requests,
`X-Crossprefill-Tokens-Before/-After` (the target tokens of all the request's texts).

This module is the proxy's options and its routes: the key check, the `X-Crossprefill`
and keep-rate headers, what becomes of a request body, the metrics. It decides; the
compressor (`compressor`: texts and tokens, in worker threads) and the relay
(`upstream`: HTTP to the upstream) do, each without knowing the other's side.
"""

import asyncio
import json
import time
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from crossprefill_cli.apps.http import chat_requests, expansion
from crossprefill_cli.apps.http.chat_requests import (ANTHROPIC, DEFAULT_ROLES, OPENAI, RESPONSES,
                                                     ChatTexts)
from crossprefill_cli.apps.http.compressor import Compressor
from crossprefill_cli.apps.http.upstream import Upstream, encoded
from crossprefill_cli.apps.http.warm import ServerModels, ServerOptions
from crossprefill_cli.apps.http.wire import (HTTPError, Metrics, error_response, read_body,
                                             same_key, take_turn, warn)
from crossprefill_cli.errors import CrossprefillError, UsageError
from crossprefill_cli.models.loading import first_line
from crossprefill_cli.models.target import TargetTokenizer
from crossprefill_cli.settings import by_fields, check_budget_options

COMPRESSED_ROUTES = {"/v1/chat/completions": OPENAI, "/v1/messages": ANTHROPIC,
                     "/v1/responses": RESPONSES}
KEY_HEADER = "x-crossprefill-api-key"  # Authorization belongs to the upstream


@dataclass(frozen=True)
class ProxyOptions:
    upstream: str
    anthropic_upstream: str | None = None  # None: `upstream` takes Anthropic's calls too
    min_tokens: int = 2000
    roles: tuple[str, ...] = DEFAULT_ROLES
    keep_rate: float | None = None  # None: the profile's
    target_map: tuple[tuple[str, str], ...] = ()  # (model name pattern, target) pairs
    fail_closed: bool = False
    connect_timeout: float = 10.0
    timeout: float = 600.0  # seconds the upstream may take to send each piece
    # compressed requests declare `expansion.TOOL`, and the proxy answers its calls
    expandable: bool = False


def check(options: ProxyOptions) -> None:
    """Raise `UsageError` for options the proxy cannot run with."""
    check_budget_options(options.keep_rate, None)
    for flag, url in (("--upstream", options.upstream),
                      ("--anthropic-upstream", options.anthropic_upstream)):
        if url is not None and not url.startswith(("http://", "https://")):
            raise UsageError(f"{flag} must be an http:// or https:// URL, got {url!r}")
    if options.min_tokens < 1 or options.timeout <= 0 or options.connect_timeout <= 0:
        raise UsageError("--min-tokens and the timeouts must be positive")


def parse_target_map(entries: list[str]) -> tuple[tuple[str, str], ...]:
    """`PATTERN=TOKENIZER` entries as pairs (raise `UsageError` naming a bad one)."""
    pairs = []
    for entry in entries:
        pattern, equals, spec = entry.partition("=")
        if not equals or not pattern or not spec:
            raise UsageError(f"--target-map {entry!r}: expected PATTERN=TOKENIZER")
        pairs.append((pattern, spec))
    return tuple(pairs)


class Bypass(Exception):
    """Compression cannot happen for this request; `reason` says why (a metric label)."""

    def __init__(self, reason: str, message: str, status: int):
        super().__init__(message)
        self.reason, self.status = reason, status


@dataclass(frozen=True)
class Prepared:
    """A request as it goes upstream: its body, the headers its answer gets, and for a
    compressed request that declares the expand tool, that body as a dict (not parsed
    again from the bytes just encoded)."""

    content: bytes
    headers: dict[str, str]
    expanding: dict | None = None


class Proxy:
    """The `/v1/` routes of a server started with an upstream."""

    def __init__(self, options: ProxyOptions, engine: ServerModels, metrics: Metrics,
                 server: ServerOptions):
        self.options, self.engine, self.metrics, self.server = options, engine, metrics, server
        self.compressor = Compressor(engine, options)
        self.upstream = Upstream(options)

    async def handle(self, request: Request) -> Response:
        path, started = request.url.path, time.perf_counter()
        try:
            if self.server.api_key is not None and not same_key(
                    request.headers.get(KEY_HEADER, ""), self.server.api_key):
                raise HTTPError(401, "unauthorized", "a valid proxy key is needed "
                                f"({KEY_HEADER}: KEY); Authorization goes to the upstream")
            content = await read_body(request, self.server.max_bytes)
            dialect = COMPRESSED_ROUTES.get(path) if request.method == "POST" else None
            prepared = Prepared(content, {}) if dialect is None \
                else await self.prepared(request, content, dialect)
            if prepared.expanding is not None:
                response = await self.upstream.expanding(request, prepared.expanding,
                                                         prepared.headers, dialect,
                                                         self._expansions)
            else:
                response = await self.upstream.forward(request, prepared.content,
                                                       prepared.headers)
        except HTTPError as error:
            response = error_response(error)
        label = path if path in COMPRESSED_ROUTES else "/v1/*"
        self.metrics.requests.labels(label, str(response.status_code)).inc()
        self.metrics.latency.labels(label).observe(time.perf_counter() - started)
        return response

    async def prepared(self, request: Request, content: bytes, dialect: str) -> Prepared:
        """The body to forward and the headers to add to the answer."""
        switch = request.headers.get("x-crossprefill", "on").strip().lower()
        if switch not in ("on", "off"):
            raise HTTPError(400, "bad_request", "X-Crossprefill must be 'on' or 'off'")
        rate = _rate(request.headers.get("x-crossprefill-keep-rate"),
                     self.options.keep_rate or self.engine.profile.keep_rate)
        if switch == "off":
            return Prepared(content, {"X-Crossprefill": "off"})
        try:
            body = json.loads(content)
        except (ValueError, RecursionError):
            # the upstream says what is wrong
            return Prepared(content, {"X-Crossprefill": "unchanged"})
        chat = chat_requests.chat_texts(body, dialect, self.options.roles)
        if chat is None:
            return Prepared(content, {"X-Crossprefill": "unchanged"})
        if not self.engine.ready.is_set():
            # a token is at least one byte: a text of fewer bytes cannot be long
            if any(len(chat.texts[i].text.encode()) > self.options.min_tokens
                   for i in chat.candidates):
                return self.bypassed(content, Bypass("loading", "the drafts are still "
                                                     "loading", 503))
            return Prepared(content, {"X-Crossprefill": "unchanged"})
        expandable = self.expandable(dialect, body)
        try:
            counter, long, before = await asyncio.to_thread(self.compressor.survey, chat,
                                                            body.get("model"))
            saved = await self._compress(request, body, chat, long, rate, counter,
                                         expandable) if long else 0
        except Bypass as bypass:
            return self.bypassed(content, bypass)
        except Exception as error:  # the model code failed: fail open, or say so
            return self.bypassed(content, Bypass("failed", f"compression failed "
                                                 f"({first_line(error)})", 502))
        # every chat request counted, compressed or not: the counters say what went upstream
        self.metrics.tokens_before.inc(before)
        self.metrics.tokens_after.inc(before - saved)
        if not saved:
            return Prepared(content, _headers("unchanged", before, before))
        self.metrics.tokens_saved.inc(saved)
        headers = _headers("compressed", before, before - saved)
        if expandable:
            expansion.declare(body, dialect)
            return Prepared(encoded(body), headers, expanding=body)
        return Prepared(encoded(body), headers)

    def expandable(self, dialect: str, body: dict) -> bool:
        """Whether this request gets the expand tool (`expansion.offered`)."""
        return self.options.expandable and expansion.offered(body, dialect)

    async def _compress(self, request: Request, body: dict, chat: ChatTexts, long: list[int],
                        rate: float, counter: TargetTokenizer, refs: bool) -> int:
        """Replace each long text in `body` by its compression; the tokens saved."""
        lane = self.engine.lane(self.server.drafts[0])
        try:
            if not await take_turn(request, lane, self.server.max_queue, self.metrics):
                raise Bypass("disconnected", "the client went away", 499)
        except HTTPError as busy:
            raise Bypass("busy", str(busy), 503) from None
        try:
            results = await asyncio.to_thread(
                lambda: [self.compressor.compressed(chat.texts[i].text, chat.query, rate,
                                                    counter, refs) for i in long])
        finally:
            lane.lock.release()
        saved = 0
        for index, compressed in zip(long, results):
            if compressed is not None:
                text = chat.texts[index]
                chat_requests.replace(body, text.path, compressed)
                saved += (self.compressor.count(counter, text.text)
                          - self.compressor.count(counter, compressed))
        return saved

    def bypassed(self, content: bytes, bypass: Bypass) -> Prepared:
        self.metrics.bypassed.labels(bypass.reason).inc()
        if self.options.fail_closed:
            raise HTTPError(bypass.status, bypass.reason, f"{bypass} (the proxy fails closed)")
        warn(f"{bypass}; the request is forwarded uncompressed")
        return Prepared(content, {"X-Crossprefill": "bypassed"})

    async def _expansions(self, calls: list[expansion.Call]) -> list[tuple[expansion.Call, str]]:
        """Each call with the text its reference stands for (or why there is none)."""
        def text(call: expansion.Call) -> str:
            try:
                return self.engine.references.expand(call.ref)
            except CrossprefillError as error:  # for the model: settings by field
                return f"error: {by_fields(str(error))}"

        self.metrics.expansions.inc(len(calls))
        return [(call, await asyncio.to_thread(text, call)) for call in calls]


def _rate(header: str | None, default: float) -> float:
    if header is None:
        return default
    try:
        rate = float(header)
    except ValueError:
        rate = float("nan")
    if not 0 < rate <= 1:
        raise HTTPError(400, "bad_request", f"X-Crossprefill-Keep-Rate must be a number in "
                        f"(0, 1], got {header!r}")
    return rate


def _headers(state: str, before: int, after: int) -> dict[str, str]:
    return {"X-Crossprefill": state, "X-Crossprefill-Tokens-Before": str(before),
            "X-Crossprefill-Tokens-After": str(after)}

