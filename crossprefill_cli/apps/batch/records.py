"""Many prompts with one model load: records in, records out, in order, none lost.

A record is a JSON object (one per line of a JSONL file): an `id` (a string or an
integer, unique in the file), the prompt as `text` or as chat `messages` (the
`--format messages` shapes), and optionally its own `query`, `keep_rate`,
`target_tokens` and `profile`; what a record leaves out comes from `Settings` (the
command line's options). Other fields are not read. Each record becomes one output
record: `id`, the compressed `text` (or `messages`), `tokens_before`, `tokens_after`,
`budget`, `keep_rate` and `query_source`, or, for a record that cannot be compressed,
`id` and `error: {type, message}` (and `line`, its line number, when it has no usable
id); the message names settings as a record does (`keep_rate`, not the command line's
`--keep-rate`: `settings.by_fields`). A failed record never stops the others.

`RecordCompressor` loads the draft and the target once and compresses records one at a
time through the one `job.Job` that `crossprefill compress` runs; `compress_many` is the
library entry point, and the Ray engine (`ray_engine`) runs one `RecordCompressor` per
actor. The file-level rules live here too, so that both engines share them: ids are
checked for duplicates before any work (`scan`), and resuming reads the
ids an earlier run finished from its output (`finished_ids`), cutting off a last line
that an interrupted run left half-written.
"""

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

from crossprefill_cli.errors import CrossprefillError, UsageError
from crossprefill_cli.models.cache import ScoreCache
from crossprefill_cli.models.loading import first_line
from crossprefill_cli.pipeline.draft_source import DraftSource, resolve_target
from crossprefill_cli.pipeline.job import DEFAULT_PROFILE, Job
from crossprefill_cli.pipeline.profiles import Profile, load_profile
from crossprefill_cli.settings import Settings, by_fields, named_by_fields

RECORD_FIELDS = ("id", "text", "messages", "query", "keep_rate", "target_tokens", "profile")


# What a record does not say for itself comes from these (the command line's options);
# the name stays for one release, the class is the one `Settings`.
BatchSettings = Settings


class RecordError(Exception):
    """A record that cannot be compressed: its error `kind` and a one-line message."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Line:
    number: int  # 1-based
    text: str | bytes  # bytes: the line is not valid UTF-8


def read_lines(stream: Iterable[bytes]) -> Iterator[Line]:
    """The non-blank lines of a JSONL byte stream, numbered from 1."""
    for number, raw in enumerate(stream, 1):
        if raw.strip():
            try:
                yield Line(number, raw.decode("utf-8"))
            except UnicodeDecodeError:
                yield Line(number, raw)


def error_record(record_id, error: Exception, line: int | None = None) -> dict:
    if isinstance(error, RecordError):
        kind = error.kind
    else:
        kind = error.wire_type if isinstance(error, CrossprefillError) else "internal"
    out: dict = {"id": record_id}
    if record_id is None and line is not None:
        out["line"] = line
    out["error"] = {"type": kind, "message": by_fields(first_line(error))}
    return out


def parse_line(line: Line) -> dict:
    """The record on one JSONL line (raise `RecordError`)."""
    if isinstance(line.text, bytes):
        raise RecordError("input", f"line {line.number} is not valid UTF-8")
    try:
        record = json.loads(line.text)
    except (ValueError, RecursionError) as error:
        raise RecordError("input", f"line {line.number} is not JSON ({first_line(error)})") from None
    if not isinstance(record, dict):
        raise RecordError("input", f"line {line.number} is not a JSON object")
    return record


def record_id(record: dict):
    """The record's id, or None when it has no usable one."""
    value = record.get("id")
    return value if isinstance(value, (str, int)) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Scan:
    lines: int
    unknown_fields: tuple[str, ...]  # fields some record has that no record field reads


def scan(lines: Iterable[Line]) -> Scan:
    """Count the lines and the fields nobody reads; raise `UsageError` naming the first
    id two records share."""
    seen: dict = {}
    unknown: set[str] = set()
    count = 0
    for line in lines:
        count += 1
        try:
            record = parse_line(line)
        except RecordError:
            continue
        unknown.update(set(record) - set(RECORD_FIELDS))
        identity = record_id(record)
        if identity is not None:
            if identity in seen:
                raise UsageError(f"id {identity!r} is on lines {seen[identity]} and "
                                 f"{line.number}; ids must be unique")
            seen[identity] = line.number
    return Scan(count, tuple(sorted(unknown)))


def done_key(record: dict):
    """What marks a record as done in an output: its id, or its line when it had none."""
    identity = record_id(record)
    return ("line", record.get("line")) if identity is None else identity


def finished_ids(output: Path) -> set:
    """The records an earlier run wrote to `output` (see `done_key`); a last line left
    half-written by an interruption is cut off, so its record is done again."""
    if not output.exists():
        return set()
    data = output.read_bytes()
    complete = data[:data.rfind(b"\n") + 1]
    if len(complete) < len(data):
        with open(output, "r+b") as stream:
            stream.truncate(len(complete))
            stream.flush()
            os.fsync(stream.fileno())
    done = set()
    for raw in complete.decode("utf-8", "replace").splitlines():
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict):
            done.add(done_key(record))
    return done


def line_key(line: Line):
    """`done_key` of the output record this input line will give."""
    try:
        identity = record_id(parse_line(line))
    except RecordError:
        identity = None
    return ("line", line.number) if identity is None else identity


class RecordCompressor:
    """The draft and target, loaded once; each call compresses one record."""

    def __init__(self, settings: Settings = Settings(),
                 on_warning: Callable[[str], None] | None = None):
        self.settings = settings.checked()
        self.profiles: dict[str, Profile] = {}
        self.profile(settings.profile or DEFAULT_PROFILE)  # an unknown one fails before any work
        self.source = DraftSource.of(settings)
        self.source.load()
        self.target = resolve_target(settings.target, self.source, on_warning or (lambda _: None))
        self.cache = None if settings.no_cache else ScoreCache()

    def profile(self, name: str) -> Profile:
        if name not in self.profiles:
            self.profiles[name] = load_profile(name)
        return self.profiles[name]

    def line(self, line: Line) -> dict:
        """The output record for one JSONL line."""
        try:
            record = parse_line(line)
        except RecordError as error:
            return error_record(None, error, line.number)
        return self(record, line=line.number)

    def __call__(self, record: dict, *, line: int | None = None) -> dict:
        identity = record_id(record)
        try:
            if identity is None:
                raise RecordError("input", "the record has no id (a string or an integer)")
            return {"id": identity, **self._compressed(record)}
        except Exception as error:  # one record's failure, whatever it is, is its own
            return error_record(identity, error, line)

    def _compressed(self, record: dict) -> dict:
        source_text, input_format = _prompt(record)
        own_budget = "keep_rate" in record or "target_tokens" in record
        keep_rate = record.get("keep_rate") if own_budget else self.settings.keep_rate
        target_tokens = record.get("target_tokens") if own_budget else self.settings.target_tokens
        query = record.get("query", self.settings.query)
        profile_name = record.get("profile", self.settings.profile or DEFAULT_PROFILE)
        for name, value, kinds in (("keep_rate", keep_rate, (int, float)),
                                   ("target_tokens", target_tokens, (int,)),
                                   ("query", query, (str,)), ("profile", profile_name, (str,))):
            if value is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
                raise RecordError("usage", f"{name} has the wrong type")
        settings = replace(self.settings, keep_rate=keep_rate, target_tokens=target_tokens,
                           query=query, profile=profile_name, format=input_format)
        done = Job(settings, draft=self.source, target=self.target, cache=self.cache,
                   profile=self.profile(profile_name)).compress(source_text)
        result = done.result
        product = ({"text": result.text} if done.conversation is None
                   else {"messages": done.messages()})
        return {**product, "tokens_before": result.tokens_before,
                "tokens_after": result.tokens_after, "budget": result.budget,
                "keep_rate": result.keep_rate, "query_source": result.query_source}


def _prompt(record: dict) -> tuple[str, str]:
    """The record's prompt as text, and its format (`text` or `messages`)."""
    if ("text" in record) == ("messages" in record):
        raise RecordError("input", "a record needs exactly one of text and messages")
    if "text" in record:
        if not isinstance(record["text"], str):
            raise RecordError("input", "text must be a string")
        return record["text"], "text"
    if not isinstance(record["messages"], (list, dict)):
        raise RecordError("input", "messages must be a list of messages")
    return json.dumps(record["messages"], ensure_ascii=False), "messages"


def local_outputs(lines: Iterable[Line], settings: Settings,
                  on_warning: Callable[[str], None] | None = None) -> Iterator[dict]:
    """The output record of each line, in order, computed here."""
    compressor = RecordCompressor(settings, on_warning)
    for line in lines:
        yield compressor.line(line)


def compress_many(records: Iterable[dict], settings: Settings = Settings(),
                  *, on_warning: Callable[[str], None] | None = None) -> Iterator[dict]:
    """Compress each record (see the module docstring) with one draft and target load;
    the output records come in input order, failures as records with `error`. Settings
    that cannot be run with raise, naming them by field (`keep_rate`)."""
    with named_by_fields():
        compressor = RecordCompressor(settings, on_warning)
    for record in records:
        yield compressor(record)

