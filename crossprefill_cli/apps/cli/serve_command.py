"""`crossprefill serve`: the command that starts the HTTP server (`apps.http.server`),
and with `--upstream` its compression proxy.

What a proxying server is started with (its drafts and targets, its queue, and the
proxy's options) is `ProxyLine`, declared once: `serve` and `wrap` both take its
options (`options.grouped_options`) and build the server's options from it.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from crossprefill_cli.apps.cli.environment import Environment
from crossprefill_cli.apps.cli.options import grouped_options, reporting_errors, typer_option
from crossprefill_cli.errors import UsageError
from crossprefill_cli.extras import needed
from crossprefill_cli.settings import SETTINGS
from crossprefill_cli.text.source import MAX_INPUT_BYTES

if TYPE_CHECKING:
    from crossprefill_cli.apps.http.proxy import ProxyOptions
    from crossprefill_cli.apps.http.warm import ServerOptions

SHORT_HELP = "Serve compression over HTTP, or proxy an LLM API."
# how this machine runs the drafts: declared in `Settings`, chosen here once for all requests
MACHINE = {setting.name: typer_option(setting) for setting in SETTINGS
           if setting.metadata["machine"]}
DeviceOption, DtypeOption, BackendOption = (MACHINE[name] for name in ("device", "dtype", "backend"))


@dataclass
class ProxyLine:
    """The options of a server that may proxy an LLM API: its drafts and targets, its
    queue, where calls go and how their texts are compressed."""

    draft: Annotated[Optional[list[str]], typer.Option(
        "--draft", "-d", help="A draft to load and serve (repeatable; the first is the "
        "default).  [default: builtin]", show_default=False)] = None
    target: Annotated[Optional[list[str]], typer.Option(
        "--target", "-t", help="A target tokenizer to serve (repeatable; the first is the "
        "default).  [default: o200k_base]", show_default=False)] = None
    profile: Annotated[str, typer.Option(
        "--profile", "-p", help="Default profile (built-in ones stay available).")] = "text"
    max_queue: Annotated[int, typer.Option(
        "--max-queue", help="Requests that may wait for a draft; more get 503.")] = 4
    max_bytes: Annotated[int, typer.Option(
        "--max-bytes", help="Largest request body.")] = MAX_INPUT_BYTES
    device: DeviceOption = "auto"
    dtype: DtypeOption = "auto"
    backend: BackendOption = "auto"
    upstream: Annotated[Optional[str], typer.Option(
        "--upstream", help="Proxy /v1/ calls (OpenAI chat completions and responses, "
        "Anthropic messages, the rest unchanged) to this base URL, e.g. "
        "https://api.openai.com/v1.",
        show_default=False, rich_help_panel="Proxy")] = None
    anthropic_upstream: Annotated[Optional[str], typer.Option(
        "--anthropic-upstream", help="Proxy: calls with an anthropic-version header "
        "(Anthropic's SDKs, Claude Code) go to this base URL instead, e.g. "
        "https://api.anthropic.com/v1.", show_default=False, rich_help_panel="Proxy")] = None
    keep_rate: Annotated[Optional[float], typer.Option(
        "--keep-rate", "-r", help="Proxy: share of each long text to keep (per request: "
        "X-Crossprefill-Keep-Rate).  [default: the profile's]", show_default=False,
        rich_help_panel="Proxy")] = None
    min_tokens: Annotated[int, typer.Option(
        "--min-tokens", help="Proxy: compress only texts over this many target tokens.",
        rich_help_panel="Proxy")] = 2000
    roles: Annotated[str, typer.Option(
        "--roles", help="Proxy: the roles whose texts may be compressed (comma-separated; "
        "system messages and the last user turn never are).", rich_help_panel="Proxy")] = "tool,user"
    target_map: Annotated[Optional[list[str]], typer.Option(
        "--target-map", help="Proxy: PATTERN=TOKENIZER, the target for models matching a "
        "glob (repeatable; OpenAI names go to tiktoken, others to the default target).",
        show_default=False, rich_help_panel="Proxy")] = None
    fail_closed: Annotated[bool, typer.Option(
        "--fail-closed", help="Proxy: answer 502/503 when compression fails, instead of "
        "forwarding the request uncompressed.", rich_help_panel="Proxy")] = False
    expandable: Annotated[bool, typer.Option(
        "--expandable", help="Proxy: gap markers carry references, and a compressed request "
        "declares a crossprefill_expand tool the proxy answers itself (the client never sees "
        "it), so the model can read what was left out.", rich_help_panel="Proxy")] = False
    upstream_timeout: Annotated[float, typer.Option(
        "--upstream-timeout", help="Proxy: seconds the upstream may take for each read "
        "(504 after).", rich_help_panel="Proxy")] = 600.0
    connect_timeout: Annotated[float, typer.Option(
        "--connect-timeout", help="Proxy: seconds to connect to the upstream (502 after).",
        rich_help_panel="Proxy")] = 10.0
    log_file: Annotated[Optional[str], typer.Option(
        "--log-file", help="Append the server's warnings and errors to this file instead of "
        "stderr ('-': stderr).  [default: serve: stderr; wrap: wrap.log in the cache folder]",
        show_default=False)] = None

    def proxy_options(self, upstream: str, anthropic_upstream: str | None) -> "ProxyOptions":
        from crossprefill_cli.apps.http.proxy import ProxyOptions, parse_target_map

        return ProxyOptions(upstream, anthropic_upstream=anthropic_upstream,
                            min_tokens=self.min_tokens, keep_rate=self.keep_rate,
                            roles=tuple(r.strip() for r in self.roles.split(",") if r.strip()),
                            target_map=parse_target_map(self.target_map or []),
                            fail_closed=self.fail_closed, expandable=self.expandable,
                            timeout=self.upstream_timeout,
                            connect_timeout=self.connect_timeout)

    def server_options(self, proxy: "ProxyOptions | None", **own) -> "ServerOptions":
        """The server's options: these, the proxy's, and what only one command sets."""
        from crossprefill_cli.apps.http.warm import ServerOptions

        own.setdefault("log_file", None if self.log_file in (None, "-") else self.log_file)

        return ServerOptions(drafts=self.draft or ["builtin"], targets=self.target or [],
                             profile=self.profile, max_queue=self.max_queue,
                             max_bytes=self.max_bytes, device=self.device, dtype=self.dtype,
                             backend=self.backend, proxy=proxy, **own)


@grouped_options(ProxyLine, "line")
def serve_command(
    *,
    host: Annotated[str, typer.Option("--host", help="Address to bind (anything but loopback "
                                      "needs an API key).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8765,
    api_key: Annotated[Optional[str], typer.Option(
        "--api-key", envvar="CROSSPREFILL_API_KEY", help="Require this key "
        "(Authorization: Bearer KEY).", show_default=False)] = None,
    allow_any_draft: Annotated[bool, typer.Option(
        "--allow-any-draft", help="Let requests name drafts and targets the server was not "
        "started with.")] = False,
    line: ProxyLine,
) -> None:
    """Serve compression over HTTP with the drafts loaded once, or proxy an LLM API.

    POST /v1/compress and /v1/estimate take the options of compress and estimate as JSON
    fields ({"text": ..., "keep_rate": 0.3, ...}) and answer what --json prints; GET
    /healthz says when the drafts are loaded, GET /metrics counts in Prometheus text.
    The commands' --server URL (or CROSSPREFILL_SERVER) sends their work here. With
    --upstream URL it is also an OpenAI/Anthropic-compatible proxy: point a client's
    base URL at http://HOST:PORT/v1 and long tool results and earlier turns are
    compressed on their way upstream."""
    env = Environment.from_sys()
    with reporting_errors(env):
        with needed("serve", "crossprefill serve"):
            from crossprefill_cli.apps.http.server import run
        proxy = None
        if line.upstream is not None:
            proxy = line.proxy_options(line.upstream, line.anthropic_upstream)
        elif line.keep_rate is not None or line.target_map or line.fail_closed \
                or line.expandable or line.anthropic_upstream is not None:
            raise UsageError("--keep-rate, --target-map, --fail-closed, --expandable and "
                             "--anthropic-upstream need --upstream")
        run(line.server_options(proxy, api_key=api_key, allow_any_draft=allow_any_draft),
            host=host, port=port)
