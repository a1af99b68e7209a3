"""What a compression reports, in plain data: no numpy, no model.

`Result` (and its spans, chunks and files) is what `pipeline.finish` returns and what
`--json` and `crossprefill serve` print; `Result.from_json` reads such a report back, so
the `--server` client rebuilds the very result the server made. The input's format is
read by `text.messages.read_format`.
This module imports nothing heavy: the client's start-up is what it imports.
"""

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crossprefill_cli.text.messages import Conversation


@dataclass(frozen=True)
class Span:
    start: int
    end: int


@dataclass(frozen=True)
class FileSpan:
    """A file of a repository dump: its header to its footer, and its language."""

    path: str
    start: int
    end: int
    language: str | None


@dataclass(frozen=True)
class ChunkReport:
    start: int
    end: int
    score: float
    kept: bool
    required: bool
    favoured: bool = False  # in a definition the query names (favour_named_definitions)


@dataclass(frozen=True)
class Omission:
    """A stretch of the input the output leaves out: its target tokens (the units' own
    counts, summed) and, with `refs`, the reference that gives it back."""

    start: int
    end: int
    tokens: int
    ref: str | None = None


@dataclass
class KindSpan:
    """A stretch of the input read as a log, JSON, JSON Lines or a diff."""

    kind: str
    start: int
    end: int


@dataclass
class Result:
    text: str
    tokens_before: int
    tokens_after: int
    budget: int
    keep_rate: float | None
    target: str
    draft: str
    profile: str
    scorer: str  # how units were scored: a profile's scorer name, or "custom"
    draft_tokens: int
    windows: int
    lookahead: int  # lookahead queries the draft scored with
    query: str | None  # the query that steered scoring
    query_source: str  # "given" (--query), "detected" (found in the text) or "none"
    spans: list[Span]
    chunks: list[ChunkReport]
    scores_cached: bool = False
    warnings: list[str] = field(default_factory=list)
    files: list[FileSpan] = field(default_factory=list)
    # the parts read as a kind of their own (log, json, jsonl, yaml, diff: see `text.kinds`)
    kinds: list[KindSpan] = field(default_factory=list)
    # what ran the draft (`models.backends`): numpy or torch, and why not numpy if not
    backend: str = ""
    backend_reason: str | None = None
    omitted: list[Omission] = field(default_factory=list)  # the gaps, in input order

    def to_json(self) -> dict:
        report = asdict(self)
        report["achieved_rate"] = round(self.tokens_after / self.tokens_before, 4)
        return report

    @classmethod
    def from_json(cls, report: dict) -> "Result":
        """The result a `to_json` report (a server's answer) describes."""
        known = {name: value for name, value in report.items()
                 if name in cls.__dataclass_fields__}
        return cls(**{**known, "spans": [Span(**s) for s in report["spans"]],
                      "chunks": [ChunkReport(**c) for c in report["chunks"]],
                      "files": [FileSpan(**f) for f in report["files"]],
                      "kinds": [KindSpan(**k) for k in report.get("kinds", [])],
                      "omitted": [Omission(**o) for o in report.get("omitted", [])]})


def summary_line(result: Result, seconds: float) -> str:
    """One line for a person at a terminal: tokens before and after, the rate, the time."""
    return (f"crossprefill: {result.tokens_before:,} → {result.tokens_after:,} target tokens "
            f"({result.target}), {100 * result.tokens_after / result.tokens_before:.1f}% kept, "
            f"{seconds:.1f} s")


def report(result: Result, conversation: "Conversation | None", printed: str) -> dict:
    """The JSON report; for messages, with the compressed messages as well."""
    body = result.to_json()
    if conversation is not None:
        body["messages"] = json.loads(printed)
    return body
