"""The proxy's way to the upstream: a request sent on with the client's own headers, and
the upstream's answer relayed back.

`Upstream.sent` sends a request to the upstream URL + the rest of the path (one that
carries an `anthropic-version` header, as Anthropic's SDKs send, to `anthropic_upstream`
when one is given: one proxy then serves both dialects), with the client's own headers
(its `Authorization` or `x-api-key` among them, never logged or stored) less the
hop-by-hop ones and the proxy's own (`X-Crossprefill-*`). `forward` gives the client the
upstream's answer as it is: status, headers, body, relayed piece by piece as it arrives,
streamed or not (server-sent events are never buffered, a long answer is never held
whole), with the proxy's headers added. An unreachable upstream is a 502 and one that
does not answer in time a 504, both with one clear message; an answer that breaks off
mid-way breaks the client's connection too, with a warning (`UpstreamBrokeOff`): ended
cleanly, an unsized (chunked) answer would reach the client as a complete, shorter one.

`expanding` is the relay of a compressed request that declares the expand tool
(`expansion`, which holds the tool's pure parts): the upstream's answer is read here
(asked for without content encoding), and while it calls the tool alone, the calls are
answered (`expand`, handed in by the routes) and the next round is sent; the client
gets the last round's answer. A streamed answer goes through `expansion_streams`'s
filters event by event, a round that ends in the proxy's calls alone continued by the
next round's stream.

Why a module of its own: this is HTTP to the upstream and nothing else. It never
compresses and never reads the engine, and the routes (`proxy`) never touch a socket:
the proxy decides what to send there, and the relay here sends it and brings back what
comes, over one connection pool for the server's lifetime.
"""

import contextlib
import json
import logging
from typing import TYPE_CHECKING, Awaitable, Callable

import httpx
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from crossprefill_cli.apps.http import expansion
from crossprefill_cli.apps.http.expansion_streams import sse_events, stream_filter
from crossprefill_cli.apps.http.wire import HTTPError, warn
from crossprefill_cli.models.loading import first_line

if TYPE_CHECKING:
    from crossprefill_cli.apps.http.proxy import ProxyOptions

# not forwarded either way: they describe one connection, not the message
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate",
                        b"proxy-authorization", b"te", b"trailer", b"transfer-encoding",
                        b"upgrade", b"host", b"content-length"})
OWN_HEADERS = b"x-crossprefill"  # the proxy's own request headers stay here

# the expand tool's calls answered: each with the text its reference stands for
Expand = Callable[[list[expansion.Call]], Awaitable[list[tuple[expansion.Call, str]]]]


class UpstreamBrokeOff(Exception):
    """Raised into the server when the upstream's answer breaks off after the client got
    its start: the server then drops the client's connection instead of ending the
    answer (the warning has said what happened; the server's traceback is left out)."""


def _not_a_broken_upstream(record: logging.LogRecord) -> bool:
    """A filter for the server's log: everything but `UpstreamBrokeOff`'s traceback."""
    error = record.exc_info[1] if record.exc_info else None
    group = getattr(error, "exceptions", ())
    return not (isinstance(error, UpstreamBrokeOff)
                or any(isinstance(inner, UpstreamBrokeOff) for inner in group))


class Upstream:
    """The upstream of a server started with one: its URLs, its timeouts, its client."""

    def __init__(self, options: "ProxyOptions"):
        self.options = options
        self.client: httpx.AsyncClient | None = None
        logging.getLogger("uvicorn.error").addFilter(_not_a_broken_upstream)

    @contextlib.asynccontextmanager
    async def connected(self):
        """One connection pool to the upstream, for the server's lifetime."""
        timeout = httpx.Timeout(self.options.timeout, connect=self.options.connect_timeout)
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            self.client = client
            yield

    async def forward(self, request: Request, content: bytes, added: dict[str, str]) -> Response:
        """Send the request upstream; its answer relayed piece by piece as it arrives,
        streamed or not (a long answer is never held whole), with its length when the
        upstream gave one."""
        upstream, url = await self.sent(request, content)
        relayed = relayed_headers(upstream, added)
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
        url = self.base_for(request).rstrip("/") + request.url.path.removeprefix("/v1")
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
                        dialect: str, expand: Expand) -> Response:
        """Forward a compressed request that declares the expand tool, and answer the
        model's calls of it here (`expand`), round after round (`expansion`)."""
        if body.get("stream"):
            return await self._expanding_stream(request, body, added, dialect, expand)
        answered, earlier = 0, []
        for round_number in range(expansion.MAX_ROUNDS + 1):
            upstream, _ = await self.sent(request, encoded(body), decoded=True)
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
                results = await expand(calls)
                answered += len(calls)
                body = expansion.continued(body, expansion.message_of(answer, dialect), results,
                                           dialect, last=round_number + 1 == expansion.MAX_ROUNDS)
                earlier.append(answer)
                continue
            if answer is not None and (calls or earlier):
                data = encoded(expansion.merged(earlier, answer, dialect))
            break
        response = Response(data, status_code=upstream.status_code)
        response.raw_headers.extend(relayed_headers(upstream, {
            **added, "X-Crossprefill-Expansions": str(answered)}, rewritten=True))
        return response

    async def _expanding_stream(self, request: Request, body: dict, added: dict[str, str],
                                dialect: str, expand: Expand) -> Response:
        upstream, url = await self.sent(request, encoded(body), decoded=True)
        if not upstream.headers.get("content-type", "").startswith("text/event-stream"):
            try:
                data = await upstream.aread()
            finally:
                await upstream.aclose()
            response = Response(data, status_code=upstream.status_code)
            response.raw_headers.extend(relayed_headers(upstream, added, rewritten=True))
            return response
        relayed = relayed_headers(upstream, added, rewritten=True)
        stream = stream_filter(dialect)

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
                        going = handle(*sse_events(lines)) if lines else True
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
                results = await expand(state.calls)
                body = expansion.continued(body, state.message, results, dialect,
                                           last=round_number + 1 == expansion.MAX_ROUNDS)
                try:
                    upstream, _ = await self.sent(request, encoded(body), decoded=True)
                except HTTPError as error:
                    warn(f"the expand tool's next round failed: {error}")
                    return

        response = StreamingResponse(events(), status_code=upstream.status_code)
        response.raw_headers.extend(relayed)
        return response

    async def relay(self, upstream: httpx.Response, url: str):
        try:
            async for piece in upstream.aiter_raw():
                yield piece
        except httpx.HTTPError as error:
            warn(f"the upstream's stream from {url} broke off ({type(error).__name__})")
            raise UpstreamBrokeOff(url) from None
        finally:
            await upstream.aclose()

    def base_for(self, request: Request) -> str:
        """The base URL for this call: Anthropic's SDKs mark theirs with a version header."""
        if self.options.anthropic_upstream and "anthropic-version" in request.headers:
            return self.options.anthropic_upstream
        return self.options.upstream

    def unreachable(self, error: httpx.HTTPError, request: Request) -> HTTPError:
        where = self.base_for(request)
        if isinstance(error, httpx.TimeoutException):
            return HTTPError(504, "upstream_timeout", f"the upstream {where} did not answer "
                             f"in time ({type(error).__name__})")
        return HTTPError(502, "upstream_unreachable", f"cannot reach the upstream {where} "
                         f"({type(error).__name__}: {first_line(error) or 'no detail'})")


def encoded(body: object) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def relayed_headers(upstream: httpx.Response, added: dict[str, str], *,
                     rewritten: bool = False) -> list[tuple[bytes, bytes]]:
    """The upstream answer's headers for the client, and the proxy's own; `rewritten`:
    for a body the proxy read and wrote anew (not content-encoded any more)."""
    dropped = HOP_BY_HOP | {b"content-encoding"} if rewritten else HOP_BY_HOP
    return [(k, v) for k, v in upstream.headers.raw if k.lower() not in dropped] + [
        (k.lower().encode(), v.encode()) for k, v in added.items()]

