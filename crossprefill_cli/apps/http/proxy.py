"""The compression proxy: `crossprefill serve --upstream URL` in front of an LLM API.

A client that speaks OpenAI's chat completions (or Anthropic's messages) points its base
URL here; every call under `/v1/` goes to `URL` + the rest of the path (one that carries
an `anthropic-version` header, as Anthropic's SDKs send, to `anthropic_upstream` when
one is given: one proxy then serves both dialects), with the client's
own headers (its `Authorization` or `x-api-key` among them, never logged or stored) and
the upstream's answer comes back as it is: status, headers, body. Server-sent events are
relayed chunk by chunk as they arrive, never buffered.

On `POST /v1/chat/completions`, `POST /v1/messages` and `POST /v1/responses`, before
forwarding, each long text that may be compressed (`chat_requests`: tool results and
user documents by default, never a system message or the last user turn) and is over
`min_tokens` target tokens is replaced by its compression at the keep rate, steered by the last user turn. Each text
is compressed on its own, so the compression of a message does not change as a
conversation grows: an agent that resends its history gets the same bytes for the same
messages (the upstream's prompt cache keeps working), and from a memo of recent
compressions they cost a lookup. The target tokenizer follows the request's `model`:
`target_map` patterns first, then the OpenAI names tiktoken knows, else the server's
default target. The body is re-serialised only when a text changed; every other field
is left exactly as it came.

Fail-open: when compression cannot happen (the drafts are loading, the draft is busy,
the model code fails), the original request goes upstream and a warning is logged;
`fail_closed` answers 503 or 502 instead. A text whose compression is refused (a budget
below its required parts, unusable text) is forwarded whole. The answer carries
`X-Crossprefill` (compressed, unchanged, off, bypassed) and, for chat requests,
`X-Crossprefill-Tokens-Before/-After` (the target tokens of all the request's texts).
An unreachable upstream is a 502 and one that does not answer in time a 504, both with
one clear message; a stream that breaks off mid-way ends there.
"""

import asyncio
import contextlib
import fnmatch
import hashlib
import json
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass

import httpx
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from crossprefill_cli.apps.http import chat_requests, expansion
from crossprefill_cli.apps.http.chat_requests import (ANTHROPIC, DEFAULT_ROLES, OPENAI, RESPONSES,
                                                     ChatTexts)
from crossprefill_cli.apps.http.warm import ServerModels, ServerOptions
from crossprefill_cli.apps.http.wire import (HTTPError, Metrics, error_response, read_body,
                                             same_key, take_turn)
from crossprefill_cli.errors import (BudgetError, CrossprefillError, InputError, ModelLoadError,
                                     UsageError)
from crossprefill_cli.models.loading import first_line
from crossprefill_cli.models.target import DEFAULT_TARGET, TargetTokenizer, tiktoken_encoding
from crossprefill_cli.pipeline.job import Job
from crossprefill_cli.settings import Settings, by_fields, check_budget_options

COMPRESSED_ROUTES = {"/v1/chat/completions": OPENAI, "/v1/messages": ANTHROPIC,
                     "/v1/responses": RESPONSES}
# not forwarded either way: they describe one connection, not the message
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate",
                        b"proxy-authorization", b"te", b"trailer", b"transfer-encoding",
                        b"upgrade", b"host", b"content-length"})
OWN_HEADERS = b"x-crossprefill"  # the proxy's own request headers stay here
KEY_HEADER = "x-crossprefill-api-key"  # Authorization belongs to the upstream
MEMO_ENTRIES = 1024  # counts and compressions; at most ~1,024 compressed texts held


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


def target_name(model: object, target_map: tuple[tuple[str, str], ...], default: str) -> str:
    """The target a request for `model` is counted in: the first matching pattern, the
    tiktoken encoding of an OpenAI model name, else `default`."""
    if not isinstance(model, str):
        return default
    for pattern, spec in target_map:
        if fnmatch.fnmatchcase(model, pattern):
            return spec
    return tiktoken_encoding(model) or default


class Bypass(Exception):
    """Compression cannot happen for this request; `reason` says why (a metric label)."""

    def __init__(self, reason: str, message: str, status: int):
        super().__init__(message)
        self.reason, self.status = reason, status


class Compressor:
    """Counting and compressing texts for the proxy, with a memo of recent results.

    Runs in worker threads; the memo's get and put are single dict operations."""

    def __init__(self, engine: ServerModels, options: ProxyOptions):
        self.engine, self.options = engine, options
        self.memo: OrderedDict[tuple, object] = OrderedDict()
        self.unloadable: set[str] = set()

    def target(self, model: object) -> TargetTokenizer:
        default = (self.engine.options.targets or [DEFAULT_TARGET])[0]
        name = target_name(model, self.options.target_map, default)
        if name not in self.unloadable:
            try:
                return self.engine.target(name)
            except ModelLoadError as error:
                self.unloadable.add(name)
                warn(f"{first_line(error)}; counting {model} in {default} instead")
        return self.engine.target(default)

    def _remembered(self, key: tuple, make):
        if key in self.memo:
            self.memo.move_to_end(key)
            return self.memo[key]
        value = self.memo[key] = make()
        while len(self.memo) > MEMO_ENTRIES:
            self.memo.popitem(last=False)
        return value

    def count(self, counter: TargetTokenizer, text: str) -> int:
        if len(text) < 64:  # hashing would cost more than counting
            return counter.count(text)
        return self._remembered(("count", counter.name, _digest(text)),
                                lambda: counter.count(text))

    def survey(self, chat: ChatTexts, model: object) -> tuple[TargetTokenizer, list[int], int]:
        """The request's target, its candidates over `min_tokens` target tokens, and the
        target tokens of all its texts."""
        counter = self.target(model)
        counts = [self.count(counter, t.text) for t in chat.texts]
        return counter, [i for i in chat.candidates if counts[i] > self.options.min_tokens], \
            sum(counts)

    def compressed(self, text: str, query: str | None, rate: float, counter: TargetTokenizer,
                   refs: bool) -> str | None:
        """`text` compressed at `rate` (with references in its markers: `refs`), or None
        when it stays whole."""
        key = ("text", counter.name, rate, query, refs, self.engine.profile.name, _digest(text))
        return self._remembered(key, lambda: self._compress(text, query, rate, counter, refs))

    def _compress(self, text: str, query: str | None, rate: float, counter: TargetTokenizer,
                  refs: bool) -> str | None:
        engine = self.engine
        settings = Settings(keep_rate=rate, query=query, detect_query=False,
                            profile=engine.profile.name, refs=refs)
        try:  # what it warns is the server's log, read by who started it: flags
            return Job(settings, draft=engine.sources[engine.options.drafts[0]], target=counter,
                       cache=engine.cache, profile=engine.profile,
                       references=engine.references, flags=True).compress(text).result.text
        except (BudgetError, InputError) as error:
            warn(f"a text of {self.count(counter, text):,} tokens is forwarded whole: "
                 f"{first_line(error)}")
            return None


class Proxy:
    """The `/v1/` routes of a server started with an upstream."""

    def __init__(self, options: ProxyOptions, engine: ServerModels, metrics: Metrics,
                 server: ServerOptions):
        self.options, self.engine, self.metrics, self.server = options, engine, metrics, server
        self.compressor = Compressor(engine, options)
        self.client: httpx.AsyncClient | None = None

    @contextlib.asynccontextmanager
    async def connected(self):
        """One connection pool to the upstream, for the server's lifetime."""
        timeout = httpx.Timeout(self.options.timeout, connect=self.options.connect_timeout)
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            self.client = client
            yield

    async def handle(self, request: Request) -> Response:
        path, started = request.url.path, time.perf_counter()
        try:
            if self.server.api_key is not None and not same_key(
                    request.headers.get(KEY_HEADER, ""), self.server.api_key):
                raise HTTPError(401, "unauthorized", "a valid proxy key is needed "
                                f"({KEY_HEADER}: KEY); Authorization goes to the upstream")
            content = await read_body(request, self.server.max_bytes)
            added: dict[str, str] = {}
            dialect = COMPRESSED_ROUTES.get(path) if request.method == "POST" else None
            if dialect is not None:
                content, added = await self.prepared(request, content, dialect)
            if added.get("X-Crossprefill") == "compressed" and self.expandable(dialect):
                response = await self.expanding(request, json.loads(content), added, dialect)
            else:
                response = await self.forward(request, content, added)
        except HTTPError as error:
            response = error_response(error)
        label = path if path in COMPRESSED_ROUTES else "/v1/*"
        self.metrics.requests.labels(label, str(response.status_code)).inc()
        self.metrics.latency.labels(label).observe(time.perf_counter() - started)
        return response

    async def prepared(self, request: Request, content: bytes,
                       dialect: str) -> tuple[bytes, dict[str, str]]:
        """The body to forward and the headers to add to the answer."""
        switch = request.headers.get("x-crossprefill", "on").strip().lower()
        if switch not in ("on", "off"):
            raise HTTPError(400, "bad_request", "X-Crossprefill must be 'on' or 'off'")
        rate = _rate(request.headers.get("x-crossprefill-keep-rate"),
                     self.options.keep_rate or self.engine.profile.keep_rate)
        if switch == "off":
            return content, {"X-Crossprefill": "off"}
        try:
            body = json.loads(content)
        except (ValueError, RecursionError):
            return content, {"X-Crossprefill": "unchanged"}  # the upstream says what is wrong
        chat = chat_requests.chat_texts(body, dialect, self.options.roles)
        if chat is None:
            return content, {"X-Crossprefill": "unchanged"}
        if not self.engine.ready.is_set():
            # a token is at least one byte: a text of fewer bytes cannot be long
            if any(len(chat.texts[i].text.encode()) > self.options.min_tokens
                   for i in chat.candidates):
                return self.bypassed(content, Bypass("loading", "the drafts are still "
                                                     "loading", 503))
            return content, {"X-Crossprefill": "unchanged"}
        try:
            counter, long, before = await asyncio.to_thread(self.compressor.survey, chat,
                                                            body.get("model"))
            saved = await self._compress(request, body, chat, long, rate, counter,
                                         self.expandable(dialect)) if long else 0
        except Bypass as bypass:
            return self.bypassed(content, bypass)
        except Exception as error:  # the model code failed: fail open, or say so
            return self.bypassed(content, Bypass("failed", f"compression failed "
                                                 f"({first_line(error)})", 502))
        # every chat request counted, compressed or not: the counters say what went upstream
        self.metrics.tokens_before.inc(before)
        self.metrics.tokens_after.inc(before - saved)
        if not saved:
            return content, _headers("unchanged", before, before)
        self.metrics.tokens_saved.inc(saved)
        if self.expandable(dialect):
            expansion.declare(body, dialect)
        return _encoded(body), _headers("compressed", before, before - saved)

    def expandable(self, dialect: str) -> bool:
        """Whether requests of `dialect` get the expand tool (`expansion.DIALECTS`)."""
        return self.options.expandable and dialect in expansion.DIALECTS

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

    def bypassed(self, content: bytes, bypass: Bypass) -> tuple[bytes, dict[str, str]]:
        self.metrics.bypassed.labels(bypass.reason).inc()
        if self.options.fail_closed:
            raise HTTPError(bypass.status, bypass.reason, f"{bypass} (the proxy fails closed)")
        warn(f"{bypass}; the request is forwarded uncompressed")
        return content, {"X-Crossprefill": "bypassed"}

    async def forward(self, request: Request, content: bytes, added: dict[str, str]) -> Response:
        """Send the request upstream; its answer relayed piece by piece as it arrives,
        streamed or not (a long answer is never held whole), with its length when the
        upstream gave one."""
        upstream, url = await self.sent(request, content)
        relayed = _relayed_headers(upstream, added)
        length = upstream.headers.get("content-length")
        if length is not None and request.method != "HEAD" \
                and upstream.status_code not in (204, 304):
            relayed.append((b"content-length", length.encode()))
        response = StreamingResponse(self.relay(upstream, url), status_code=upstream.status_code)
        response.raw_headers.extend(relayed)
        return response

    async def sent(self, request: Request, content: bytes, *,
                   decoded: bool = False) -> tuple[httpx.Response, str]:
        """The upstream's answer to the request with `content` (streamed: its body is
        still to be read) and the URL it went to; `decoded`: ask for an answer that is
        not content-encoded, to be read here."""
        url = self.upstream_for(request).rstrip("/") + request.url.path.removeprefix("/v1")
        if request.url.query:
            url += "?" + request.url.query
        headers = [(k, v) for k, v in request.headers.raw
                   if k.lower() not in HOP_BY_HOP and not k.lower().startswith(OWN_HEADERS)
                   and not (decoded and k.lower() == b"accept-encoding")]
        if decoded:
            headers.append((b"accept-encoding", b"identity"))
        assert self.client is not None
        try:
            return await self.client.send(
                self.client.build_request(request.method, url, headers=headers, content=content),
                stream=True), url
        except httpx.HTTPError as error:
            raise self.unreachable(error, request) from None

    async def expanding(self, request: Request, body: dict, added: dict[str, str],
                        dialect: str) -> Response:
        """Forward a compressed request that declares the expand tool, and answer the
        model's calls of it here, round after round (`expansion`)."""
        if body.get("stream"):
            return await self._expanding_stream(request, body, added, dialect)
        answered = 0
        for round_number in range(expansion.MAX_ROUNDS + 1):
            upstream, _ = await self.sent(request, _encoded(body), decoded=True)
            try:
                data = await upstream.aread()
            except httpx.HTTPError as error:
                raise self.unreachable(error, request) from None
            finally:
                await upstream.aclose()
            try:
                answer = json.loads(data) if upstream.status_code == 200 else None
            except ValueError:
                answer = None
            calls, others = expansion.calls(answer, dialect)
            if calls and not others and round_number < expansion.MAX_ROUNDS:
                results = await self._expansions(calls)
                answered += len(calls)
                body = expansion.continued(body, expansion.message_of(answer, dialect), results,
                                           dialect, last=round_number + 1 == expansion.MAX_ROUNDS)
                continue
            if calls:
                data = _encoded(expansion.without_calls(answer, dialect))
            break
        response = Response(data, status_code=upstream.status_code)
        response.raw_headers.extend(_relayed_headers(upstream, {
            **added, "X-Crossprefill-Expansions": str(answered)}, rewritten=True))
        return response

    async def _expanding_stream(self, request: Request, body: dict, added: dict[str, str],
                                dialect: str) -> Response:
        upstream, url = await self.sent(request, _encoded(body), decoded=True)
        if not upstream.headers.get("content-type", "").startswith("text/event-stream"):
            try:
                data = await upstream.aread()
            finally:
                await upstream.aclose()
            response = Response(data, status_code=upstream.status_code)
            response.raw_headers.extend(_relayed_headers(upstream, added, rewritten=True))
            return response
        relayed = _relayed_headers(upstream, added, rewritten=True)
        stream = (expansion.AnthropicStream() if dialect == expansion.ANTHROPIC
                  else expansion.OpenAIStream())

        async def events():
            nonlocal upstream, body
            for round_number in range(expansion.MAX_ROUNDS + 1):
                pending: list[bytes] = []
                handle = stream.round(pending.append)
                lines: list[str] = []
                try:
                    async for line in upstream.aiter_lines():
                        if line:
                            lines.append(line)
                            continue
                        going = handle(*expansion.sse_events(lines)) if lines else True
                        lines = []
                        for piece in pending:
                            yield piece
                        pending.clear()
                        if not going:
                            break
                except httpx.HTTPError as error:
                    warn(f"the upstream's stream from {url} broke off ({type(error).__name__})")
                    return
                finally:
                    await upstream.aclose()
                state = stream.state
                if not state.continues:
                    return
                results = await self._expansions(state.calls)
                body = expansion.continued(body, state.message, results, dialect,
                                           last=round_number + 1 == expansion.MAX_ROUNDS)
                try:
                    upstream, _ = await self.sent(request, _encoded(body), decoded=True)
                except HTTPError as error:
                    warn(f"the expand tool's next round failed: {error}")
                    return

        response = StreamingResponse(events(), status_code=upstream.status_code)
        response.raw_headers.extend(relayed)
        return response

    async def _expansions(self, calls: list[expansion.Call]) -> list[tuple[expansion.Call, str]]:
        """Each call with the text its reference stands for (or why there is none)."""
        def text(call: expansion.Call) -> str:
            try:
                return self.engine.references.expand(call.ref)
            except CrossprefillError as error:  # for the model: settings by field
                return f"error: {by_fields(str(error))}"

        self.metrics.expansions.inc(len(calls))
        return [(call, await asyncio.to_thread(text, call)) for call in calls]

    async def relay(self, upstream: httpx.Response, url: str):
        try:
            async for piece in upstream.aiter_raw():
                yield piece
        except httpx.HTTPError as error:
            warn(f"the upstream's stream from {url} broke off ({type(error).__name__})")
        finally:
            await upstream.aclose()

    def upstream_for(self, request: Request) -> str:
        """The base URL for this call: Anthropic's SDKs mark theirs with a version header."""
        if self.options.anthropic_upstream and "anthropic-version" in request.headers:
            return self.options.anthropic_upstream
        return self.options.upstream

    def unreachable(self, error: httpx.HTTPError, request: Request) -> HTTPError:
        where = self.upstream_for(request)
        if isinstance(error, httpx.TimeoutException):
            return HTTPError(504, "upstream_timeout", f"the upstream {where} did not answer "
                             f"in time ({type(error).__name__})")
        return HTTPError(502, "upstream_unreachable", f"cannot reach the upstream {where} "
                         f"({type(error).__name__}: {first_line(error) or 'no detail'})")


def _encoded(body: object) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _relayed_headers(upstream: httpx.Response, added: dict[str, str], *,
                     rewritten: bool = False) -> list[tuple[bytes, bytes]]:
    """The upstream answer's headers for the client, and the proxy's own; `rewritten`:
    for a body the proxy read and wrote anew (not content-encoded any more)."""
    dropped = HOP_BY_HOP | {b"content-encoding"} if rewritten else HOP_BY_HOP
    return [(k, v) for k, v in upstream.headers.raw if k.lower() not in dropped] + [
        (k.lower().encode(), v.encode()) for k, v in added.items()]


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


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def warn(message: str) -> None:
    print(f"crossprefill: warning: {message}", file=sys.stderr, flush=True)
