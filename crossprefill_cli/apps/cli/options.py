"""The command line's options and its error reporting, shared by every command.

The compression options are `settings.Settings`, declared once: `settings_options`
derives a command's Typer options from it (and from `CommandLine`, what only a command
line has) and hands the command one `Settings`; `grouped_options` does the same for any
dataclass of Typer options that several commands share (a server's, for `serve` and
`wrap`). `reporting_errors` turns the library's
errors, Ctrl-C and broken pipes into one line and an exit status.
"""

import functools
import inspect
import os
import sys
import typing
from dataclasses import Field, dataclass, fields, replace
from pathlib import Path
from typing import Annotated, Optional

import typer

from crossprefill_cli.apps.cli.environment import Environment
from crossprefill_cli.errors import CrossprefillError, InputError, UsageError
from crossprefill_cli.settings import SETTINGS, Settings, value_type
from crossprefill_cli.text.source import decode_input

InputArgument = Annotated[Optional[str], typer.Argument(
    metavar="INPUT", help="File to read, or - for stdin (the default).", show_default=False)]
OutputOption = Annotated[Optional[Path], typer.Option(
    "--output", "-o", help="Write to this file (atomically) instead of stdout.", show_default=False)]
JsonOption = Annotated[bool, typer.Option("--json", help="Print a JSON report instead.")]
# every command that can send its work to a server (`CommandLine`'s, and `expand`'s)
ServerOption = Annotated[Optional[str], typer.Option(
    "--server", envvar="CROSSPREFILL_SERVER", help="Send the work to a `crossprefill serve` "
    "at this URL: its draft, target and profile where none is named, and its reference "
    "store (the key from CROSSPREFILL_API_KEY).", show_default=False)]


@dataclass
class CommandLine:
    """What a command line adds to the settings: a file holding the query, how much it
    says, and a server to send the work to."""

    query_file: Annotated[Optional[Path], typer.Option(
        "--query-file", help="Read the query from a file.", show_default=False)] = None
    quiet: Annotated[bool, typer.Option("--quiet", help="No warnings or progress on stderr.")] = False
    server: ServerOption = None


def typer_option(setting: Field) -> object:
    """The Typer option of a `Settings` field, from its declaration."""
    meta = setting.metadata
    kind = Optional[value_type(setting)] if typing.get_args(setting.type) else setting.type
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
    shared = [inspect.Parameter(setting.name, inspect.Parameter.KEYWORD_ONLY,
                                default=setting.default, annotation=typer_option(setting))
              for setting in chosen] + [_parameter(f) for f in added]

    def gather(kwargs: dict) -> dict:
        return {"settings": Settings(**{setting.name: kwargs.pop(setting.name)
                                        for setting in chosen}),
                "line": CommandLine(**{f.name: kwargs.pop(f.name) for f in added})}

    return _spliced(command, ("settings", "line"), shared, gather)


def grouped_options(group: type, keyword: str):
    """Add the fields of the dataclass `group`, each annotated with its Typer option, to
    a command's options, and pass them as one `group` in `keyword=`: options that
    several commands share, declared once."""
    def decorate(command):
        def gather(kwargs: dict) -> dict:
            return {keyword: group(**{f.name: kwargs.pop(f.name) for f in fields(group)})}

        return _spliced(command, (keyword,), [_parameter(f) for f in fields(group)], gather)
    return decorate


def _parameter(option: Field) -> inspect.Parameter:
    return inspect.Parameter(option.name, inspect.Parameter.KEYWORD_ONLY,
                             default=option.default, annotation=option.type)


def _spliced(command, replaced: tuple[str, ...], added: list[inspect.Parameter], gather):
    """`command` with the options `added` after its own but those `replaced`: a call's
    `gather(kwargs)` takes the added ones out and gives what the command gets instead."""
    signature = inspect.signature(command)
    own = [p for p in signature.parameters.values() if p.name not in replaced]

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        given = gather(kwargs)
        return command(*args, **given, **kwargs)

    del wrapper.__wrapped__  # Typer must see the wrapper's signature, not the command's
    wrapper.__signature__ = signature.replace(parameters=own + added)
    wrapper.__annotations__ = {p.name: p.annotation for p in own + added}
    return wrapper


def with_query_file(settings: Settings, line: CommandLine) -> Settings:
    """The settings with the query read from --query-file, when one is given."""
    return replace(settings, query=query_from(settings.query, line.query_file))


def warner(env: Environment, line: CommandLine):
    def warn(message: str) -> None:
        if not line.quiet:
            env.say(f"crossprefill: warning: {message}")
    return warn


def query_from(query: str | None, query_file: Path | None) -> str | None:
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


class reporting_errors:
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
