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

import importlib
import json
import sys
import time
import warnings
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Annotated, ContextManager, Iterator, Optional

import typer

from crossprefill_cli.apps.cli import batch_command, mcp_command, serve_command, wrap_command
from crossprefill_cli.apps.cli.environment import Environment
from crossprefill_cli.apps.cli.options import (CommandLine, InputArgument, JsonOption,
                                               OutputOption, ServerOption, reporting_errors,
                                               settings_options, warner, with_query_file)
from crossprefill_cli.errors import UsageError
from crossprefill_cli.pipeline import heap
from crossprefill_cli.results import Result, report, summary_line
from crossprefill_cli.settings import (BUDGET_FIELDS, ESTIMATE_RATES, MACHINE_FIELDS, Settings,
                                      check_budget_options)
from crossprefill_cli.text import messages
from crossprefill_cli.text.messages import read_format

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

DEFAULT_ESTIMATE_RATES = ",".join(map(str, ESTIMATE_RATES))
# Click's exceptions where this Typer takes Click from: click itself (older releases)
# or its own vendored copy (0.24 and later)
CLICK_ERRORS = importlib.import_module(typer.BadParameter.__module__)


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
    with reporting_errors(env):
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
    with reporting_errors(env):
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
    with reporting_errors(env):
        from crossprefill_cli.apps.cli.estimate_table import render_estimate

        rates = _parse_rates(keep_rates)
        if context_window is not None and context_window < 1:
            raise UsageError(f"--context-window must be positive, got {context_window}")
        if price_per_mtok is not None and price_per_mtok < 0:
            raise UsageError(f"--price-per-mtok must not be negative, got {price_per_mtok}")
        settings = with_query_file(settings, line)
        extra = dict(context_window=context_window, price_per_mtok=price_per_mtok,
                     must_keep=must_keep or [])
        if line.server:
            from crossprefill_cli.apps.cli.client import request

            report = request(line.server, "/v1/estimate", _server_request(
                env, input_path, settings, line, {"keep_rates": rates, **extra})[2])
            for warning in report["warnings"]:
                warner(env, line)(warning)
        else:
            with _local_job(env, input_path, settings, line,
                            with_budget=False) as (job, analysed):
                report = job.estimate(analysed, rates, **extra)
        env.emit(_json(report) if json_report
                 else render_estimate(report, color=env.stdout_isatty, width=env.terminal_width),
                 None)


@app.command("expand", short_help="Print the text a gap marker's reference stands for.")
def expand_command(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(
        metavar="REF", help="A gap marker's reference, such as 7f3a9c01:120-480 (from "
        "compress --refs).", show_default=False)],
    *,
    server: ServerOption = None,
) -> None:
    """Print the original text that a gap marker of `compress --refs` left out, exactly
    as it was in the input."""
    env: Environment = ctx.obj or Environment.from_sys()
    with reporting_errors(env):
        if server:
            from crossprefill_cli.apps.cli.client import request

            text = request(server, "/v1/expand", {"ref": reference})["text"]
        else:
            from crossprefill_cli.pipeline.references import RefStore

            text = RefStore().expand(reference)
        env.emit(text, None)


app.command("serve", short_help=serve_command.SHORT_HELP)(serve_command.serve_command)
app.command("batch", short_help=batch_command.SHORT_HELP)(batch_command.batch_command)
# everything after COMMAND's name is COMMAND's, options included
app.command("wrap", short_help=wrap_command.SHORT_HELP,
            context_settings={"allow_interspersed_args": False})(wrap_command.wrap_command)
app.command("mcp", short_help=mcp_command.SHORT_HELP)(mcp_command.mcp_command)


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
                line: CommandLine) -> "Done | Printed":
    settings = with_query_file(settings, line).checked()
    if line.server:
        return _compressed_by_server(env, input_path, settings, line)
    with _local_job(env, input_path, settings, line) as (job, analysed):
        return job.finish(analysed)


def _server_request(env: Environment, input_path: str | None, settings: Settings,
                    line: CommandLine, extra: dict) -> tuple[str, messages.Conversation | None, dict]:
    """The input, its messages if any, and the request for a server: every setting that
    is not the machine's and not left to the server (None)."""
    if any(getattr(settings, name) != getattr(Settings, name) for name in MACHINE_FIELDS):
        warner(env, line)("--device, --dtype and --backend are the server's to choose; ignored "
                          "with --server")
    source_text = env.read_input(input_path)
    conversation = read_format(source_text, settings.format)
    body = {name: value for name, value in asdict(settings).items()
            if name not in MACHINE_FIELDS and value is not None}
    return source_text, conversation, {"text": source_text, **body, **extra}


def _compressed_by_server(env: Environment, input_path: str | None, settings: Settings,
                          line: CommandLine) -> "Printed":
    from crossprefill_cli.apps.cli.client import request

    source_text, conversation, body = _server_request(env, input_path, settings, line, {})
    answer = request(line.server, "/v1/compress", body)
    result = Result.from_json(answer)
    for warning in result.warnings:
        warner(env, line)(warning)
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


def _json(report: dict) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2) + "\n"


@contextmanager
def _local_job(env: Environment, input_path: str | None, settings: Settings, line: CommandLine,
               *, with_budget: bool = True) -> Iterator[tuple["Job", "AnalysedInput"]]:
    """The job for this command and its analysis of the input, the draft's progress on
    the terminal; the target tokenizer builds in another process meanwhile and counts
    until the block ends. What can fail without the draft's scores fails before the
    draft reads, or while it reads if the target is still building (see
    `job.Job.analyse`)."""
    # here, not at the top: the --server client never needs the pipeline (numpy), the
    # cache or the target tokenizer, and its start-up is all it costs; the target's
    # process starts first, so that it builds while this one imports the rest
    from crossprefill_cli.models.target_process import start_target

    with start_target(settings.target) as pending:
        from crossprefill_cli.pipeline.job import Job

        source_text = env.read_input(input_path)
        with _draft_progress(env, line) as on_progress:
            job = Job(settings, target=pending, on_warning=warner(env, line),
                      on_progress=on_progress, flags=True)
            analysed = job.analyse(source_text, with_budget=with_budget)
        yield job, analysed


def _draft_progress(env: Environment, line: CommandLine) -> ContextManager:
    """The draft's progress bar on a terminal; in a pipe nothing, not even Rich's import
    (a tenth of a second of a small input's run)."""
    if not env.stderr_isatty or line.quiet:
        return nullcontext()
    from crossprefill_cli.apps.cli.render import draft_progress, stderr_console

    return draft_progress(stderr_console(env.stderr))


def main() -> None:
    heap.one_arena()  # before any thread: a long-running command's memory stays level
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
