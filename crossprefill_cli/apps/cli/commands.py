"""The `crossprefill` command line: thin Typer commands over the pipeline.

Contract (what scripts may rely on):
- stdout carries only the command's product: the compressed text (`compress`), the
  estimate table (`estimate`), nothing (`inspect`), or a JSON report with `--json`;
- diagnostics go to stderr: one line per warning or error, prefixed `crossprefill:`,
  and the heatmap, counts and progress bar, which appear on a terminal (or when asked);
- exit 0 on success, 2 for usage errors (bad options, profiles or budgets), 1 for
  unusable input or models, 130 on Ctrl-C, 141 when the reader of stdout goes away
  (a broken pipe ends quietly);
- `-o PATH` is written atomically and only after compression succeeded.

The compression options are `settings.Settings`, declared once: `settings_options`
derives each command's Typer options from it (and from `CommandLine`, what only a
command line has), and hands the command one `Settings`; the work itself is one
`job.Job` (locally) or one request to a server (`--server`).
"""

import functools
import importlib
import inspect
import json
import os
import sys
import time
import typing
import warnings
from contextlib import contextmanager
from dataclasses import Field, asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Iterator, Optional

import typer

from crossprefill_cli.apps.cli.environment import Environment
from crossprefill_cli.errors import CrossprefillError, InputError, UsageError
from crossprefill_cli.results import Result, report, summary_line
from crossprefill_cli.settings import (BUDGET_FIELDS, MACHINE_FIELDS, SETTINGS, Settings,
                                       check_budget_options)
from crossprefill_cli.text import messages
from crossprefill_cli.text.messages import read_format
from crossprefill_cli.text.source import MAX_INPUT_BYTES, decode_input

if TYPE_CHECKING:
    from crossprefill_cli.pipeline.job import AnalysedInput, Done, Job

app = typer.Typer(
    name="crossprefill",
    help="Compress long prompts and repository dumps with cross-family speculative prefill.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

DEFAULT_ESTIMATE_RATES = "0.1,0.2,0.3,0.5"
# Click's exceptions where this Typer takes Click from: click itself (older releases)
# or its own vendored copy (0.24 and later)
CLICK_ERRORS = importlib.import_module(typer.BadParameter.__module__)

InputArgument = Annotated[Optional[str], typer.Argument(
    metavar="INPUT", help="File to read, or - for stdin (the default).", show_default=False)]
OutputOption = Annotated[Optional[Path], typer.Option(
    "--output", "-o", help="Write to this file (atomically) instead of stdout.", show_default=False)]
JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON report instead.")]


@dataclass
class CommandLine:
    """What a command line adds to the settings: a file holding the query, how much it
    says, and a server to send the work to."""

    query_file: Annotated[Optional[Path], typer.Option(
        "--query-file", help="Read the query from a file.", show_default=False)] = None
    quiet: Annotated[bool, typer.Option("--quiet", help="No warnings or progress on stderr.")] = False
    server: Annotated[Optional[str], typer.Option(
        "--server", envvar="CROSSPREFILL_SERVER", help="Send the work to a `crossprefill serve` "
        "at this URL (its drafts and targets; the key from CROSSPREFILL_API_KEY).",
        show_default=False)] = None


def _option(setting: Field) -> object:
    """The Typer option of a `Settings` field, from its declaration."""
    meta = setting.metadata
    kinds = [kind for kind in typing.get_args(setting.type) if kind is not type(None)]
    kind = Optional[kinds[0]] if kinds else setting.type
    shown = meta["shown_default"]
    return Annotated[kind, typer.Option(
        *meta["flags"], help=meta["help"] + (f"  [default: {shown}]" if shown else ""),
        show_default=setting.default is not None and shown is None)]


def settings_options(command=None, *, without: tuple[str, ...] = (),
                     line: tuple[str, ...] = tuple(f.name for f in fields(CommandLine))):
    """Add the `Settings` fields (but those named in `without`, which keep their
    defaults) and the `CommandLine` fields named in `line` to a command's options, and
    pass them as `settings=` and `line=`."""
    if command is None:
        return functools.partial(settings_options, without=without, line=line)
    chosen = [setting for setting in SETTINGS if setting.name not in without]
    added = [f for f in fields(CommandLine) if f.name in line]
    signature = inspect.signature(command)
    own = [p for p in signature.parameters.values() if p.name not in ("settings", "line")]
    shared = [inspect.Parameter(setting.name, inspect.Parameter.KEYWORD_ONLY,
                                default=setting.default, annotation=_option(setting))
              for setting in chosen]
    shared += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default,
                                 annotation=f.type) for f in added]

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        settings = Settings(**{setting.name: kwargs.pop(setting.name) for setting in chosen})
        given = CommandLine(**{f.name: kwargs.pop(f.name) for f in added})
        return command(*args, settings=settings, line=given, **kwargs)

    del wrapper.__wrapped__  # Typer must see the wrapper's signature, not the command's
    wrapper.__signature__ = signature.replace(parameters=own + shared)
    wrapper.__annotations__ = {p.name: p.annotation for p in own + shared}
    return wrapper


def _version(value: bool) -> None:
    if value:
        from crossprefill_cli import __version__
        print(f"crossprefill {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False
          ) -> None:
    """Compress long prompts and repository dumps with cross-family speculative prefill."""


@app.command("compress", short_help="Compress INPUT to a target-token budget; the text goes to stdout.")
@settings_options
def compress_command(
    ctx: typer.Context,
    input_path: InputArgument = None,
    *,
    output: OutputOption = None,
    json_report: JsonOption = False,
    heatmap: Annotated[bool, typer.Option(
        "--heatmap/--no-heatmap", help="Show the saliency heatmap, counts and top chunks on "
        "stderr (what inspect shows).")] = False,
    settings: Settings,
    line: CommandLine,
) -> None:
    """Compress INPUT to a target-token budget; the result goes to stdout.

    On a terminal, one line on stderr says what it did (--quiet: nothing)."""
    env: Environment = ctx.obj or Environment.from_sys()
    started = time.perf_counter()
    with _reporting_errors(env):
        if output is not None:
            env.check_output(output, input_path)
        done = _compressed(env, input_path, settings, line)
        env.emit(_json(report(done.result, done.conversation, done.printed)) if json_report
              else done.printed, output)
        if heatmap:
            from crossprefill_cli.apps.cli.render import show_report, stderr_console
            show_report(stderr_console(env.stderr), done.result, done.text)
        elif env.stderr_isatty and not line.quiet:
            env.say(summary_line(done.result, time.perf_counter() - started))


@app.command("inspect", short_help="Show what the draft finds salient and what a budget keeps.")
@settings_options
def inspect_command(
    ctx: typer.Context,
    input_path: InputArgument = None,
    *,
    json_report: JsonOption = False,
    settings: Settings,
    line: CommandLine,
) -> None:
    """Show which parts of INPUT the draft finds salient, and what a budget keeps (stderr)."""
    env: Environment = ctx.obj or Environment.from_sys()
    with _reporting_errors(env):
        done = _compressed(env, input_path, settings, line)
        from crossprefill_cli.apps.cli.render import show_report, stderr_console
        show_report(stderr_console(env.stderr), done.result, done.text)
        if json_report:
            env.emit(_json(report(done.result, done.conversation, done.printed)), None)


@app.command("estimate", short_help="Tabulate tokens, savings and survivors of INPUT per keep rate.")
@settings_options(without=BUDGET_FIELDS)
def estimate_command(
    ctx: typer.Context,
    input_path: InputArgument = None,
    *,
    keep_rates: Annotated[str, typer.Option(
        "--keep-rates", help="Comma-separated keep rates to try.")] = DEFAULT_ESTIMATE_RATES,
    context_window: Annotated[Optional[int], typer.Option(
        "--context-window", help="Say whether each result fits this many target tokens.",
        show_default=False)] = None,
    price_per_mtok: Annotated[Optional[float], typer.Option(
        "--price-per-mtok", help="Input price per million target tokens, to show the money "
        "saved.", show_default=False)] = None,
    must_keep: Annotated[Optional[list[str]], typer.Option(
        "--must-keep", help="A string that must survive (repeatable); finds the smallest keep "
        "rate that keeps them all.", show_default=False)] = None,
    json_report: JsonOption = False,
    settings: Settings,
    line: CommandLine,
) -> None:
    """Tabulate what each keep rate leaves of INPUT: tokens, fit, savings, survivors."""
    env: Environment = ctx.obj or Environment.from_sys()
    with _reporting_errors(env):
        from crossprefill_cli.apps.cli.estimate_table import render_estimate

        rates = _parse_rates(keep_rates)
        if context_window is not None and context_window < 1:
            raise UsageError(f"--context-window must be positive, got {context_window}")
        if price_per_mtok is not None and price_per_mtok < 0:
            raise UsageError(f"--price-per-mtok must not be negative, got {price_per_mtok}")
        settings = _with_query_file(settings, line)
        extra = dict(context_window=context_window, price_per_mtok=price_per_mtok,
                     must_keep=must_keep or [])
        if line.server:
            from crossprefill_cli.apps.cli.client import request

            report = request(line.server, "/v1/estimate", _server_request(
                env, input_path, settings, line, {"keep_rates": rates, **extra})[2])
            for warning in report["warnings"]:
                _warner(env, line)(warning)
        else:
            with _local_job(env, input_path, settings, line,
                            with_budget=False) as (job, analysed):
                report = job.estimate(analysed, rates, **extra)
        env.emit(_json(report) if json_report
              else render_estimate(report, color=env.stdout_isatty, width=env.terminal_width),
              None)


@app.command("serve", short_help="Serve compression over HTTP, or proxy an LLM API.")
def serve_command(
    *,
    host: Annotated[str, typer.Option("--host", help="Address to bind (anything but loopback "
                                      "needs an API key).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8765,
    draft: Annotated[Optional[list[str]], typer.Option(
        "--draft", "-d", help="A draft to load and serve (repeatable; the first is the "
        "default).  [default: builtin]", show_default=False)] = None,
    target: Annotated[Optional[list[str]], typer.Option(
        "--target", "-t", help="A target tokenizer to serve (repeatable; the first is the "
        "default).  [default: o200k_base]", show_default=False)] = None,
    profile: Annotated[str, typer.Option(
        "--profile", "-p", help="Default profile (built-in ones stay available).")] = "text",
    api_key: Annotated[Optional[str], typer.Option(
        "--api-key", envvar="CROSSPREFILL_API_KEY", help="Require this key "
        "(Authorization: Bearer KEY).", show_default=False)] = None,
    max_queue: Annotated[int, typer.Option(
        "--max-queue", help="Requests that may wait for a draft; more get 503.")] = 4,
    max_bytes: Annotated[int, typer.Option(
        "--max-bytes", help="Largest request body.")] = MAX_INPUT_BYTES,
    allow_any_draft: Annotated[bool, typer.Option(
        "--allow-any-draft", help="Let requests name drafts and targets the server was not "
        "started with.")] = False,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or mps.")] = "auto",
    dtype: Annotated[str, typer.Option("--dtype", help="auto, float32, bfloat16 or float16.")] = "auto",
    upstream: Annotated[Optional[str], typer.Option(
        "--upstream", help="Also be a compression proxy: forward /v1/ calls (OpenAI chat "
        "completions, Anthropic messages, the rest unchanged) to this base URL, e.g. "
        "https://api.openai.com/v1.", show_default=False, rich_help_panel="Proxy")] = None,
    keep_rate: Annotated[Optional[float], typer.Option(
        "--keep-rate", "-r", help="Proxy: share of each long text to keep (per request: "
        "X-Crossprefill-Keep-Rate).  [default: the profile's]", show_default=False,
        rich_help_panel="Proxy")] = None,
    min_tokens: Annotated[int, typer.Option(
        "--min-tokens", help="Proxy: compress only texts over this many target tokens.",
        rich_help_panel="Proxy")] = 2000,
    roles: Annotated[str, typer.Option(
        "--roles", help="Proxy: the roles whose texts may be compressed (comma-separated; "
        "system messages and the last user turn never are).", rich_help_panel="Proxy")] = "tool,user",
    target_map: Annotated[Optional[list[str]], typer.Option(
        "--target-map", help="Proxy: PATTERN=TOKENIZER, the target for models matching a "
        "glob (repeatable; OpenAI names go to tiktoken, others to the default target).",
        show_default=False, rich_help_panel="Proxy")] = None,
    fail_closed: Annotated[bool, typer.Option(
        "--fail-closed", help="Proxy: answer 502/503 when compression fails, instead of "
        "forwarding the request uncompressed.", rich_help_panel="Proxy")] = False,
    upstream_timeout: Annotated[float, typer.Option(
        "--upstream-timeout", help="Proxy: seconds the upstream may take for each read "
        "(504 after).", rich_help_panel="Proxy")] = 600.0,
    connect_timeout: Annotated[float, typer.Option(
        "--connect-timeout", help="Proxy: seconds to connect to the upstream (502 after).",
        rich_help_panel="Proxy")] = 10.0,
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
    with _reporting_errors(env):
        try:
            from crossprefill_cli.apps.http.server import ServerOptions, run
        except ImportError as error:
            from crossprefill_cli.extras import missing

            raise missing("serve", "crossprefill serve", error.name) from None
        proxy = None
        if upstream is not None:
            from crossprefill_cli.apps.http.proxy import ProxyOptions, parse_target_map

            proxy = ProxyOptions(upstream, min_tokens=min_tokens, keep_rate=keep_rate,
                                 roles=tuple(r.strip() for r in roles.split(",") if r.strip()),
                                 target_map=parse_target_map(target_map or []),
                                 fail_closed=fail_closed, timeout=upstream_timeout,
                                 connect_timeout=connect_timeout)
        elif keep_rate is not None or target_map or fail_closed:
            raise UsageError("--keep-rate, --target-map and --fail-closed need --upstream")
        run(ServerOptions(drafts=draft or ["builtin"], targets=target or [], profile=profile,
                          api_key=api_key, max_queue=max_queue, max_bytes=max_bytes,
                          allow_any_draft=allow_any_draft, device=device, dtype=dtype,
                          proxy=proxy), host=host, port=port)


@app.command("batch", short_help="Compress every record of a JSONL file with one model load.")
@settings_options(without=("format",), line=("query_file", "quiet"))
def batch_command(
    ctx: typer.Context,
    input_path: Annotated[str, typer.Argument(
        metavar="INPUT", help="JSONL file of records ({\"id\", \"text\" or \"messages\", "
        "optional \"query\", \"keep_rate\", \"target_tokens\", \"profile\"}), or - for stdin.")],
    *,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="JSONL file the output records go to, each as it finishes.  "
        "[default: stdout]", show_default=False)] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Skip the records already in --output and append the rest.")] = False,
    engine: Annotated[str, typer.Option(
        "--engine", help="local (this process) or ray (Ray Data actors).")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(
        "--ray-address", help="Ray: the cluster to join.  [default: start one on this "
        "machine]", show_default=False)] = None,
    actors: Annotated[int, typer.Option("--actors", help="Ray: actors, each with its own "
                                        "draft.")] = 1,
    cpus_per_actor: Annotated[float, typer.Option("--cpus-per-actor", help="Ray: CPUs (and "
                                                  "torch threads) per actor.")] = 1.0,
    gpus_per_actor: Annotated[float, typer.Option("--gpus-per-actor", help="Ray: GPUs per "
                                                  "actor.")] = 0.0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Ray: records per batch "
                                            "an actor takes.")] = 8,
    settings: Settings,
    line: CommandLine,
) -> None:
    """Compress every record of a JSONL file with one model load; exit 1 if any failed."""
    env: Environment = ctx.obj or Environment.from_sys()
    with _reporting_errors(env):
        from crossprefill_cli.apps.batch.records import scan
        from crossprefill_cli.apps.cli.batch_files import BatchOutput, input_lines
        from crossprefill_cli.pipeline.profiles import load_profile

        if engine not in ("local", "ray"):
            raise UsageError(f"unknown --engine {engine!r}; choose local or ray")
        settings = _with_query_file(settings, line).checked()
        load_profile(settings.profile or "text")  # an unknown one fails before any work
        lines = input_lines(env, input_path)
        found = scan(lines())
        say = _warner(env, line)
        for name in found.unknown_fields:
            say(f"records have a field {name!r} that batch does not read (output records "
                "carry the id to join on)")
        with BatchOutput(env, output, resume=resume) as sink:
            pending = [entry for entry in lines() if not sink.has(entry)]
            if engine == "ray":
                from crossprefill_cli.apps.batch.ray_engine import RayOptions, ray_outputs

                outputs = ray_outputs(pending, settings, RayOptions(
                    address=ray_address, actors=actors, cpus_per_actor=cpus_per_actor,
                    gpus_per_actor=gpus_per_actor, batch_size=batch_size))
            else:
                from crossprefill_cli.apps.batch.records import local_outputs

                outputs = local_outputs(pending, settings, say)
            sink.write_all(outputs, len(pending), skipped=found.lines - len(pending),
                           quiet=line.quiet)
        if sink.failed:
            raise typer.Exit(1)


def _parse_rates(value: str) -> list[float]:
    try:
        rates = sorted({float(part) for part in value.split(",") if part.strip()})
    except ValueError:
        raise UsageError(f"--keep-rates must be comma-separated numbers, got {value!r}") from None
    if not rates:
        raise UsageError("--keep-rates is empty")
    for rate in rates:
        check_budget_options(rate, None)
    return rates


def _compressed(env: Environment, input_path: str | None, settings: Settings,
                line: CommandLine) -> "Done":
    settings = _with_query_file(settings, line).checked()
    if line.server:
        return _compressed_by_server(env, input_path, settings, line)
    with _local_job(env, input_path, settings, line) as (job, analysed):
        return job.finish(analysed)


def _with_query_file(settings: Settings, line: CommandLine) -> Settings:
    """The settings with the query read from --query-file, when one is given."""
    return replace(settings, query=_query(settings.query, line.query_file))


def _server_request(env: Environment, input_path: str | None, settings: Settings,
                    line: CommandLine, extra: dict) -> tuple[str, messages.Conversation | None, dict]:
    """The input, its messages if any, and the request for a server: every setting that
    is not the machine's and not left to the server (None)."""
    if any(getattr(settings, name) != getattr(Settings, name) for name in MACHINE_FIELDS):
        _warner(env, line)("--device and --dtype are the server's to choose; ignored "
                           "with --server")
    source_text = env.read_input(input_path)
    conversation = read_format(source_text, settings.format)
    body = {name: value for name, value in asdict(settings).items()
            if name not in MACHINE_FIELDS and value is not None}
    return source_text, conversation, {"text": source_text, **body, **extra}


def _compressed_by_server(env: Environment, input_path: str | None, settings: Settings,
                          line: CommandLine) -> "Done":
    from crossprefill_cli.apps.cli.client import request

    source_text, conversation, body = _server_request(env, input_path, settings, line, {})
    answer = request(line.server, "/v1/compress", body)
    result = Result.from_json(answer)
    for warning in result.warnings:
        _warner(env, line)(warning)
    printed = (result.text if conversation is None
               else messages.dumps_like(source_text, answer["messages"]))
    return Printed(source_text if conversation is None else conversation.text,
                   conversation, result, printed)


@dataclass
class Printed:
    """What a server's answer gives a command to print (as `job.Done` does locally)."""

    text: str
    conversation: messages.Conversation | None
    result: Result
    printed: str


def _warner(env: Environment, line: CommandLine):
    def warn(message: str) -> None:
        if not line.quiet:
            env.say(f"crossprefill: warning: {message}")
    return warn


def _json(report: dict) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2) + "\n"


@contextmanager
def _local_job(env: Environment, input_path: str | None, settings: Settings, line: CommandLine,
               *, with_budget: bool = True) -> Iterator[tuple["Job", "AnalysedInput"]]:
    """The job for this command and its analysis of the input, the draft's progress on
    the terminal; the target tokenizer builds in another process meanwhile and counts
    until the block ends. What can fail without the draft's scores fails before the
    draft reads (see `job.Job.analyse`)."""
    # here, not at the top: the --server client never needs the pipeline (numpy), the
    # cache or the target tokenizer, and its start-up is all it costs
    from crossprefill_cli.apps.cli.render import draft_progress, stderr_console
    from crossprefill_cli.models.target_process import start_target
    from crossprefill_cli.pipeline.job import Job

    with start_target(settings.target) as pending:
        source_text = env.read_input(input_path)
        with draft_progress(stderr_console(env.stderr),
                            enabled=env.stderr_isatty and not line.quiet) as on_progress:
            job = Job(settings, target=pending, on_warning=_warner(env, line),
                      on_progress=on_progress)
            analysed = job.analyse(source_text, with_budget=with_budget)
        yield job, analysed


def _query(query: str | None, query_file: Path | None) -> str | None:
    if query is not None and query_file is not None:
        raise UsageError("give --query or --query-file, not both")
    if query_file is None:
        return query
    try:
        return decode_input(query_file.expanduser().read_bytes()).strip()
    except OSError as error:
        raise UsageError(f"cannot read --query-file {query_file}: {error.strerror}") from None
    except InputError as error:
        raise UsageError(f"--query-file {query_file}: {error}") from None


class _reporting_errors:
    """Turn library errors, Ctrl-C and broken pipes into one line and an exit status."""

    def __init__(self, env: Environment):
        self.env = env

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, traceback) -> bool:
        if error is None:
            return False
        if isinstance(error, CrossprefillError):
            self.env.say(f"crossprefill: error: {error}")
            raise typer.Exit(error.exit_code)
        if isinstance(error, BrokenPipeError):
            _silence_stdout()
            raise typer.Exit(141)
        if isinstance(error, KeyboardInterrupt):
            self.env.say("crossprefill: interrupted")
            raise typer.Exit(130)
        return False


def _silence_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main() -> None:
    # Help in Rich panels on a terminal, plain text in pipes and logs.
    app.rich_markup_mode = "rich" if sys.stdout.isatty() and sys.stderr.isatty() else None
    # Python warnings in this process are libraries' (deprecations and the like), never
    # ours: they are not for the user of a command line.
    warnings.simplefilter("ignore")
    try:
        status = app(prog_name="crossprefill", standalone_mode=False)
    except CLICK_ERRORS.UsageError as error:
        if type(error).__name__ == "NoArgsIsHelpError":  # the help, as Click would show it
            error.show()
            status = error.exit_code
        else:  # one line, like every other error, with where to look
            command = error.ctx.command_path if error.ctx is not None else "crossprefill"
            print(f"crossprefill: error: {error.format_message()} (see '{command} --help')",
                  file=sys.stderr)
            status = error.exit_code
    except typer.Abort:
        print("crossprefill: interrupted", file=sys.stderr)
        status = 130
    sys.exit(status or 0)
