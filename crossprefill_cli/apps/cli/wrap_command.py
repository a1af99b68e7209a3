"""`crossprefill wrap [proxy options] -- COMMAND ...`: run an agent with its LLM calls
going through the compression proxy, for as long as the agent runs.

The proxy runs in this process: uvicorn in a thread (`server.serving`) on a loopback
socket bound first, on a free port. A child `crossprefill serve` would need a second
interpreter to start, a port handed over or read back from its output, and its
counters scraped over HTTP at the end, and it could outlive a wrap that is killed; in
this process the port is known before anything loads, the summary reads the proxy's
own counters (`Metrics`), and the proxy ends with the process whatever ends it. The
draft's work in the server's threads costs the main thread nothing: it only waits.

COMMAND starts once the drafts are loaded (`ServerModels.settled`: 0.6 s for the
bundled draft, seconds for one on transformers). Started at once, its first calls would
go upstream uncompressed with a warning line each, in the middle of its screen; and a
draft that cannot load is one error line and exit 1 here, before anything runs, rather
than a whole session forwarded uncompressed.

COMMAND's environment points every client at the proxy: `OPENAI_BASE_URL` (the openai
SDKs, `llm`, and Codex CLI's older releases; newer ones take `-c openai_base_url=URL`),
`OPENAI_API_BASE` (aider, litellm, older clients), `ANTHROPIC_BASE_URL` (the Anthropic
SDKs and Claude Code, which add `/v1/messages`) and `ANTHROPIC_API_BASE` (litellm reads
it first); loopback is added to `NO_PROXY`, so that a corporate HTTP proxy is not asked
for it. Calls with an `anthropic-version` header go to the Anthropic upstream, the rest
to the OpenAI-style one; each defaults to what those variables held before (the
Anthropic one with `/v1` added), else the public API.

COMMAND runs in the foreground, in this process group: it keeps the terminal, and
Ctrl-C there reaches it directly. SIGTERM and SIGHUP sent to wrap are passed on to it,
and so is SIGINT unless this process group owns the terminal (then it came from Ctrl-C,
which COMMAND has had already); wrap itself keeps running until COMMAND ends, then
prints one summary line on stderr (its stdout is COMMAND's alone), stops the proxy and
exits with COMMAND's status (128+N when a signal N ended it). A COMMAND that cannot be
found is one line and 127, as in a shell. Meanwhile the proxy's warnings go to a log file
(`log_file`), since the terminal is COMMAND's; the summary says how many and where.
"""

import os
import shutil
import signal
import subprocess
from typing import Annotated

import typer

from crossprefill_cli.apps.cli.environment import Environment
from crossprefill_cli.apps.cli.options import grouped_options, reporting_errors
from crossprefill_cli.apps.cli.serve_command import ProxyLine
from crossprefill_cli.errors import CrossprefillError
from crossprefill_cli.extras import needed

SHORT_HELP = "Run an agent (COMMAND) with its LLM calls compressed on the way."
LOOPBACK = "127.0.0.1"
OPENAI_VARIABLES = ("OPENAI_BASE_URL", "OPENAI_API_BASE")
ANTHROPIC_VARIABLES = ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_BASE")
OPENAI_API, ANTHROPIC_API = "https://api.openai.com/v1", "https://api.anthropic.com/v1"
WRAP_LOG = "wrap.log"
FORWARDED = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                  if hasattr(signal, name))


class CommandNotFound(CrossprefillError):
    exit_code = 127


class CommandNotRun(CrossprefillError):
    exit_code = 126


@grouped_options(ProxyLine, "line")
def wrap_command(
    command: Annotated[list[str], typer.Argument(
        metavar="COMMAND...", help="The program to run and its arguments (after --).",
        show_default=False)],
    *,
    quiet: Annotated[bool, typer.Option(
        "--quiet", help="No summary line on stderr when COMMAND ends.")] = False,
    line: ProxyLine,
) -> None:
    """Run COMMAND with its LLM calls going through a compression proxy, then say what
    it saved.

    The proxy listens on a free loopback port; COMMAND gets OPENAI_BASE_URL,
    OPENAI_API_BASE, ANTHROPIC_BASE_URL and ANTHROPIC_API_BASE pointing at it. Calls
    with an anthropic-version header go to --anthropic-upstream (default:
    $ANTHROPIC_BASE_URL/v1, else https://api.anthropic.com/v1), the rest to --upstream
    (default: $OPENAI_BASE_URL, else https://api.openai.com/v1). The proxy's warnings go
    to wrap.log in the cache folder (--log-file). When COMMAND ends, one line on stderr
    says the tokens saved; wrap exits with COMMAND's status.

    Example: crossprefill wrap --keep-rate 0.3 -- claude"""
    env = Environment.from_sys()
    with reporting_errors(env):
        with needed("serve", "crossprefill wrap"):
            from crossprefill_cli.apps.http.server import check_options, listen, serving
            from crossprefill_cli.apps.http.wire import LOG
        openai, anthropic = default_upstreams(os.environ)
        options = line.server_options(line.proxy_options(line.upstream or openai,
                                                         line.anthropic_upstream or anthropic),
                                      log_file=log_file(line.log_file))
        check_options(options)
        if shutil.which(command[0]) is None:
            raise CommandNotFound(f"{command[0]}: command not found")
        listening = listen(LOOPBACK, 0)
        url = f"http://{LOOPBACK}:{listening.getsockname()[1]}"
        with serving(options, listening) as app:
            engine = app.state.engine
            engine.settled.wait()
            if engine.failure is not None:
                raise CrossprefillError(engine.failure)
            status = run_forwarding_signals(command, {**os.environ, **pointed_at(url)})
            if not quiet:
                env.say(summary(app.state.proxy.metrics, LOG))
    raise typer.Exit(status)


def log_file(given: str | None) -> str | None:
    """Where the proxy's warnings go while COMMAND runs: the file given, stderr for
    '-', else `WRAP_LOG` in the cache folder (a warning on stderr would land in the
    middle of a full-screen agent's screen)."""
    if given is not None:
        return None if given == "-" else given
    from crossprefill_cli.models.cache_folder import default_cache_dir

    return str(default_cache_dir() / WRAP_LOG)


def default_upstreams(environ) -> tuple[str, str]:
    """The OpenAI-style and the Anthropic upstream the environment already names."""
    openai = next((environ[name] for name in OPENAI_VARIABLES if environ.get(name)), OPENAI_API)
    anthropic = next((environ[name].rstrip("/") + "/v1" for name in ANTHROPIC_VARIABLES
                      if environ.get(name)), ANTHROPIC_API)
    return openai, anthropic


def pointed_at(url: str) -> dict[str, str]:
    """The variables that send COMMAND's clients to the proxy at `url`."""
    variables = {name: f"{url}/v1" for name in OPENAI_VARIABLES}
    variables.update({name: url for name in ANTHROPIC_VARIABLES})
    for name in ("NO_PROXY", "no_proxy"):
        variables[name] = ",".join(filter(None, [os.environ.get(name), LOOPBACK]))
    return variables


def run_forwarding_signals(command: list[str], environ: dict[str, str]) -> int:
    """Run `command` in the foreground until it ends, passing on the signals this process
    gets; its exit status, 128+N when signal N ended it."""
    child: subprocess.Popen | None = None
    early: list[int] = []  # arrived before the child existed

    def forward(number: int, frame) -> None:
        if number == signal.SIGINT and owns_the_terminal():
            return  # Ctrl-C: the terminal sent it to COMMAND's process group already
        if child is None:
            early.append(number)
        else:
            child.send_signal(number)

    previous = {number: signal.signal(number, forward) for number in FORWARDED}
    try:
        try:
            child = subprocess.Popen(command, env=environ)
        except OSError as error:
            raise CommandNotRun(f"cannot run {command[0]}: {error.strerror or error}") from None
        for number in early:
            child.send_signal(number)
        status = child.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return 128 - status if status < 0 else status


def owns_the_terminal() -> bool:
    """Whether this process group is the foreground one of its controlling terminal."""
    try:
        terminal = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
    except OSError:
        return False  # no controlling terminal
    try:
        return os.tcgetpgrp(terminal) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(terminal)


def summary(metrics, log) -> str:
    """One line: the chat requests, the target tokens of their texts before and after
    the proxy, and where the warnings are if there were any (`wire.ServerLog`)."""
    from crossprefill_cli.apps.http.proxy import COMPRESSED_ROUTES

    registry = metrics.registry
    requests = sum(sample.value for family in registry.collect()
                   if family.name == "crossprefill_requests"
                   for sample in family.samples
                   if sample.name.endswith("_total") and sample.labels["path"] in COMPRESSED_ROUTES)
    bypassed = sum(sample.value for family in registry.collect()
                   if family.name == "crossprefill_proxy_bypassed"
                   for sample in family.samples if sample.name.endswith("_total"))
    before = registry.get_sample_value("crossprefill_tokens_before_total") or 0
    after = registry.get_sample_value("crossprefill_tokens_after_total") or 0
    saved = 100 * (before - after) / before if before else 0.0
    line = (f"crossprefill: {requests:,.0f} request{'' if requests == 1 else 's'}, "
            f"{before:,.0f} → {after:,.0f} target tokens upstream ({saved:.1f}% saved)")
    if bypassed:
        line += f", {bypassed:,.0f} forwarded uncompressed"
    if log.warnings and log.path is not None:
        line += f"; {log.warnings} warning{'' if log.warnings == 1 else 's'} in {log.path}"
    return line
