"""The `crossprefill` command line: thin Typer commands over `pipeline.compress`.

Contract (what scripts may rely on):
- stdout carries only the compressed text, or the JSON report with `--json`;
- diagnostics go to stderr, one line each, prefixed `crossprefill:`;
- exit 0 on success, 2 for usage errors (bad options, profiles or budgets), 1 for
  unusable input or models, 130 on Ctrl-C, 141 when the reader of stdout goes away
  (a broken pipe ends quietly);
- `-o PATH` is written atomically and only after compression succeeded.
"""

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .environment import Environment, write_atomically
from .errors import CrossprefillError, InputError, UsageError
from .pipeline import Result, compress
from .source import decode_input

app = typer.Typer(
    name="crossprefill",
    help="Compress long prompts and repository dumps with cross-family speculative prefill.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

InputArgument = Annotated[Optional[str], typer.Argument(
    metavar="INPUT", help="File to compress, or - for stdin (the default).", show_default=False)]
ProfileOption = Annotated[str, typer.Option(
    "--profile", "-p", help="Profile: text, code, or a YAML file.")]
KeepRateOption = Annotated[Optional[float], typer.Option(
    "--keep-rate", "-r", help="Share of the input's target tokens to keep, in (0, 1] "
    "(default: the profile's).", show_default=False)]
TargetTokensOption = Annotated[Optional[int], typer.Option(
    "--target-tokens", "-n", help="Hard ceiling in target tokens (wins over --keep-rate).",
    show_default=False)]
DraftOption = Annotated[str, typer.Option(
    "--draft", "-d", help="Draft model: builtin, a Hugging Face causal LM id, or a local directory.")]
TargetOption = Annotated[Optional[str], typer.Option(
    "--target", "-t", help="Target tokenizer: a tiktoken encoding (o200k_base), an OpenAI "
    "model (gpt-4o), or a Hugging Face tokenizer id or directory.  [default: o200k_base]",
    show_default=False)]
QueryOption = Annotated[Optional[str], typer.Option(
    "--query", "-q", help="The question the compressed text must answer (steers scoring, "
    "not printed).", show_default=False)]
QueryFileOption = Annotated[Optional[Path], typer.Option(
    "--query-file", help="Read the query from a file.", show_default=False)]
ChunkSizeOption = Annotated[Optional[int], typer.Option(
    "--chunk-size", help="Draft tokens per chunk (overrides the profile).", show_default=False)]
PoolKernelOption = Annotated[Optional[int], typer.Option(
    "--pool-kernel", help="Average-pooling kernel (overrides the profile).", show_default=False)]
LookaheadOption = Annotated[Optional[int], typer.Option(
    "--lookahead", help="Lookahead queries: the last prompt token plus greedy tokens "
    "(overrides the profile).", show_default=False)]
DelimiterOption = Annotated[Optional[str], typer.Option(
    "--delimiter", help="Marker for omitted text (overrides the profile).", show_default=False)]
WindowOption = Annotated[Optional[int], typer.Option(
    "--window", help="Draft tokens scored at once (default: what the draft's context allows).",
    show_default=False)]
DeviceOption = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or mps.")]
DtypeOption = Annotated[str, typer.Option("--dtype", help="auto, float32, bfloat16 or float16.")]
OutputOption = Annotated[Optional[Path], typer.Option(
    "--output", "-o", help="Write to this file (atomically) instead of stdout.", show_default=False)]
JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON report instead of the text.")]
QuietOption = Annotated[bool, typer.Option("--quiet", help="No warnings on stderr.")]


def _version(value: bool) -> None:
    if value:
        from . import __version__
        print(f"crossprefill {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False
          ) -> None:
    """Compress long prompts and repository dumps with cross-family speculative prefill."""


@app.command("compress")
def compress_command(
    ctx: typer.Context,
    input_path: InputArgument = None,
    *,
    profile: ProfileOption = "text",
    keep_rate: KeepRateOption = None,
    target_tokens: TargetTokensOption = None,
    draft: DraftOption = "builtin",
    target: TargetOption = None,
    query: QueryOption = None,
    query_file: QueryFileOption = None,
    chunk_size: ChunkSizeOption = None,
    pool_kernel: PoolKernelOption = None,
    lookahead: LookaheadOption = None,
    delimiter: DelimiterOption = None,
    window: WindowOption = None,
    device: DeviceOption = "auto",
    dtype: DtypeOption = "auto",
    output: OutputOption = None,
    json_report: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Compress INPUT to a target-token budget; the result goes to stdout."""
    env: Environment = ctx.obj or Environment.from_sys()
    with _reporting_errors(env):
        text = _read_input(env, input_path)
        result = compress(
            text, keep_rate=keep_rate, target_tokens=target_tokens, profile=profile,
            draft=draft, target=target, query=_query(query, query_file),
            chunk_size=chunk_size, pool_kernel=pool_kernel, lookahead=lookahead,
            delimiter=delimiter, window=window, device=device, dtype=dtype,
            on_warning=None if quiet else lambda message: env.say(f"crossprefill: warning: {message}"))
        _emit(env, result, output=output, json_report=json_report)


def _read_input(env: Environment, input_path: str | None) -> str:
    if input_path is None or input_path == "-":
        if env.stdin_isatty:
            raise UsageError("no input: give a file, or pipe text on stdin")
        return decode_input(env.stdin.read())
    path = Path(input_path).expanduser()
    try:
        return decode_input(path.read_bytes())
    except FileNotFoundError:
        raise InputError(f"{input_path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{input_path}: is a directory") from None
    except OSError as error:
        raise InputError(f"{input_path}: {error.strerror}") from None


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


def _emit(env: Environment, result: Result, *, output: Path | None, json_report: bool) -> None:
    payload = json.dumps(result.to_json(), ensure_ascii=False, indent=2) + "\n" \
        if json_report else result.text
    if output is None:
        env.write_stdout(payload)
        return
    try:
        write_atomically(output, payload)
    except OSError as error:
        raise CrossprefillError(f"cannot write {output}: {error.strerror}") from None


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
    # Help and usage errors in Rich panels on a terminal, plain lines in pipes and logs.
    app.rich_markup_mode = "rich" if sys.stdout.isatty() and sys.stderr.isatty() else None
    app(prog_name="crossprefill")
