"""llm-crossprefill: crossprefill's compression inside simonw's `llm`.

Two faces over one path:

- the fragment loader `cp:` (`llm -f 'cp:PATH?q=QUESTION&n=8000' QUESTION`): PATH is
  read, compressed, and sent as a fragment whose source says what it is and how many
  target tokens it came to;
- the command `llm compress [PATHS...] -q QUESTION -n 8000`, which prints the text.

Both read their input the same way (`read_input`): stdin or one file is compressed as
it is; a directory, a glob or several paths become one repository dump
(`crossprefill_cli.text.packing`, repomix's XML style), which crossprefill's dump reader
recognises, so every file's path stays as its header. Both take their options from crossprefill's `Settings`,
where every option is declared once: the query string's names and value types and the
command's Click options are derived from `SETTINGS` (plus the short aliases q, n and r),
so a new option reaches both without a change here. Both compress through crossprefill's
`Job`, the one compression job behind every front end; its warnings go to stderr as
`crossprefill: warning: ...`, and its errors become what `llm` reports: a `ValueError`
from the loader (llm prints "Could not load fragment ...: MESSAGE" and exits 1), a Click
error from the command (exit status 2 for a usage error, 1 otherwise, as crossprefill's).

llm imports every plugin on each run, so at load time this module imports only `llm`,
Click and `crossprefill_cli.settings` (the standard library alone); the pipeline (numpy,
tokenizers, a draft) is imported when a compression is asked for.
"""

import os
import sys
from glob import glob
from pathlib import Path
from typing import Sequence
from urllib.parse import parse_qsl

import click
import llm

from crossprefill_cli.settings import SETTINGS, Settings, value_type

PREFIX = "cp"
# Short names of the query string, as the command line's -q, -n and -r.
ALIASES = {"q": "query", "n": "target_tokens", "r": "keep_rate"}
BOOLEANS = {"1": True, "true": True, "0": False, "false": False}
NUMBER_KINDS = {int: "a whole number", float: "a number"}


KINDS = {setting.name: value_type(setting) for setting in SETTINGS}


@llm.hookimpl
def register_fragment_loaders(register):
    register(PREFIX, load_fragment)


def load_fragment(argument: str) -> llm.Fragment:
    """The fragment `cp:PATH?NAME=VALUE&...` names: PATH compressed with those settings."""
    path, _, query_string = argument.partition("?")
    if not path:
        raise ValueError(f"give a file, folder, glob or - before the '?': {PREFIX}:PATH?q=...")
    settings = settings_from_query(query_string)
    text = read_input([path])
    done = compressed(text, settings, ValueError)
    result = done.result
    return llm.Fragment(done.printed, f"{PREFIX}:{path} ({result.tokens_before} -> "
                                      f"{result.tokens_after} {result.target} tokens)")


def settings_from_query(query_string: str) -> Settings:
    """The `Settings` a query string asks for: each field by its own name or an alias,
    once, with a value of the field's type."""
    try:
        pairs = parse_qsl(query_string, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise ValueError(f"cannot read the parameters {query_string!r}: write "
                         f"NAME=VALUE&NAME=VALUE") from None
    values: dict[str, object] = {}
    for given, raw in pairs:
        name = ALIASES.get(given, given)
        if name not in KINDS:
            raise ValueError(f"unknown parameter {given!r}; known: "
                             f"{', '.join([*ALIASES, *KINDS])}")
        if name in values:
            raise ValueError(f"{name} is given twice")
        values[name] = parameter_value(name, raw)
    return Settings(**values)


def parameter_value(name: str, raw: str) -> object:
    """`raw` read as the value of the field `name`."""
    kind = KINDS[name]
    if kind is bool:
        if raw.lower() not in BOOLEANS:
            raise ValueError(f"{name} must be 1, 0, true or false, got {raw!r}")
        return BOOLEANS[raw.lower()]
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be {NUMBER_KINDS[kind]}, got {raw!r}") from None


def read_input(paths: Sequence[str]) -> str:
    """The text to compress: stdin's (no paths, or -) or one file's own text; else one
    dump of the files the paths name (directories recursively, globs expanded), hidden
    files and folders left out, and files holding no text (binary, not UTF-8, empty)
    skipped."""
    from crossprefill_cli.errors import InputError
    from crossprefill_cli.text.packing import pack
    from crossprefill_cli.text.source import MAX_INPUT_BYTES, decode_input

    # a fragment's PATH reaches here as written: no shell has expanded its ~
    paths = [os.path.expanduser(path) for path in paths]
    if paths in ([], ["-"]):
        if sys.stdin.isatty():
            raise ValueError("no input: give a path, or pipe the text in")
        source, data = "stdin", sys.stdin.buffer.read()
    elif len(paths) == 1 and Path(paths[0]).is_file():
        source, data = paths[0], file_bytes(Path(paths[0]))
    else:
        texts, size = {}, 0
        for file in files_named(paths):
            data = file_bytes(file)
            size += len(data)
            if size > MAX_INPUT_BYTES:
                raise ValueError(f"the files of {' '.join(paths)} come to more than "
                                 f"{MAX_INPUT_BYTES:,} bytes; name fewer")
            try:
                texts[file] = decode_input(data)
            except InputError:
                continue
        if not texts:
            raise ValueError(f"no text files in {' '.join(paths)}")
        try:
            return pack([(path.as_posix(), text) for path, text in texts.items()])
        except InputError as error:
            raise ValueError(str(error)) from None
    try:
        return decode_input(data)
    except InputError as error:
        raise ValueError(f"{source}: {error}") from None


def file_bytes(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError as error:
        raise ValueError(f"{file}: {error.strerror}") from None


def files_named(paths: Sequence[str]) -> list[Path]:
    """The files of every path, in order: a file itself, a folder's files (sorted,
    recursively, hidden ones left out), or the files and folders a glob matches."""
    found: list[Path] = []
    for path in paths:
        matches = [path] if Path(path).exists() else sorted(glob(path, recursive=True))
        if not matches:
            raise ValueError(f"{path}: no such file or folder, and no file matches it")
        for match in map(Path, matches):
            found.extend(folder_files(match) if match.is_dir() else [match])
    return list(dict.fromkeys(found))  # a file two paths name appears once


def folder_files(folder: Path) -> list[Path]:
    files = []
    for root, folders, names in os.walk(folder):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        files += [Path(root, name) for name in sorted(names) if not name.startswith(".")]
    return files


def compressed(text: str, settings: Settings, error_type: type[Exception]):
    """crossprefill's `Job` run on `text`; its errors raised as `error_type` with their
    message (a `click.ClickException` also gets crossprefill's exit status)."""
    from crossprefill_cli.errors import CrossprefillError
    from crossprefill_cli.pipeline.job import Job

    try:
        return Job(settings, on_warning=warn, flags=True).compress(text)
    except CrossprefillError as error:
        failure = error_type(str(error))
        if isinstance(failure, click.ClickException):
            failure.exit_code = error.exit_code
        raise failure from None


def warn(message: str) -> None:
    click.echo(f"crossprefill: warning: {message}", err=True)


def settings_options(command):
    """Add every `Settings` field to a Click command as the option crossprefill's own
    command line declares: its flags, type, default and help. (A field's
    `shown_default` is left out: it speaks of `--server`, which only crossprefill has.)"""
    for setting in reversed(SETTINGS):
        kind, meta = KINDS[setting.name], setting.metadata
        command = click.option(
            *meta["flags"], setting.name, type=None if kind is bool else kind,
            is_flag=kind is bool, default=setting.default, help=meta["help"],
            show_default=setting.default is not None)(command)
    return command


@llm.hookimpl
def register_commands(cli):
    @cli.command(name="compress")
    @click.argument("paths", nargs=-1, metavar="[PATHS]...")
    @settings_options
    def compress_command(paths: tuple[str, ...], **settings) -> None:
        """Compress files, folders or globs (one dump), or stdin, for a question.

        The compressed text goes to stdout, to pipe into `llm`:

        \b
            q="Where is the cache pruned?"
            llm compress src -q "$q" -n 8000 | llm "$q"
        """
        try:
            text = read_input(paths)
        except ValueError as error:
            raise click.ClickException(str(error)) from None
        done = compressed(text, Settings(**settings), click.ClickException)
        click.echo(done.printed, nl=False)
