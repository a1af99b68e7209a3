"""The input's structure: parts that tile it, each knowing what it is.

`describe` reads the input as parts that tile it: for a repository dump (see
`dumps`), each file's header, body and footer plus the text around the files; for a
chat transcript (see `query`), each turn's header, content and footer, where the
markers, system turns and the last user turn are required (a long last turn: only its
question, which `cutting.carve` makes required like any span the caller must keep); for
anything else, one anonymous part. A part is *code* when its language is a known
programming or data language (or, for an undelimited input of unknown language, when
the profile snaps to lines) and prose otherwise (a dump's preamble and the text between
its files are prose); code is chunked on line starts, prose on the profile's boundary.
A part of a log, of data or of a diff carries its records (`detail`, see `records`), and
a part of code its definitions and the identifiers it writes (`symbols`, see `outline`).

The delimiter of a gap is that of the part the gap starts in: in code, the profile's
`language_delimiters` entry for a file's language, or its plain `delimiter`; in prose,
and in a dump's file of unknown language, its `prose_delimiter`: that file's comment
syntax is unknown, and a comment marker (`// omitted`) would claim one. Where the part
can say what a gap dropped (a log's or data's records), a count stands for it instead
(`Layout.marker`).

Why this is a module apart from the units (`cutting`): the layout depends on the input
alone, never on the budget. `analysis.analyse` describes an input once, next to the
draft's scores, and every budget (one for `compress`, many for `estimate`) reuses it;
the units are cut anew for each budget, whose head, tail and kept spans differ. The
reading of what the input is (dumps, chats, kinds, logs, data, diffs, code) is here;
what selection chooses from is there.
"""

from bisect import bisect_right
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING

from crossprefill_cli.text import (diffs, dumps, kinds, logs, outline, query, structured, syntax,
                                   yaml_data)
from crossprefill_cli.units import records

if TYPE_CHECKING:  # profiles are handed in; their package is above this one
    from crossprefill_cli.pipeline.profiles import Profile


@dataclass(frozen=True)
class Part:
    start: int
    end: int
    language: str | None = None
    code: bool = False
    required: bool = False
    # a log's entries or data's blocks (`records`), when the part is a log or data
    detail: logs.LogStructure | structured.BlockPlan | diffs.DiffStructure | None = field(
        default=None, compare=False)
    # a code part's definitions and the identifiers it writes, at offsets into the input
    symbols: syntax.Symbols | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Layout:
    dump: dumps.Dump
    parts: tuple[Part, ...]

    @cached_property
    def _part_starts(self) -> list[int]:
        return [part.start for part in self.parts]

    def part_at(self, position: int) -> Part:
        index = bisect_right(self._part_starts, position) - 1
        return self.parts[max(index, 0)]

    def boundary_at(self, position: int, prose_boundary: str) -> str:
        return "line" if self.part_at(position).code else prose_boundary

    def delimiter_at(self, position: int, profile: "Profile") -> str:
        """The delimiter of a gap that starts at `position` (see the module docstring)."""
        part = self.part_at(position)
        if not part.code or (part.language is None and self.dump.files):
            return profile.prose_gap_delimiter
        return profile.delimiter_for(part.language)

    def marker(self, text: str, start: int, end: int, profile: "Profile") -> str:
        """What stands for the gap [start, end): a count where the part can say what went
        (see `records`), else the delimiter."""
        detail = self.part_at(start).detail
        note = None if detail is None else records.gap_note(text, detail, start, end)
        return note or self.delimiter_at(start, profile)

    @cached_property
    def changed_names(self) -> frozenset[str]:
        """The names a diff in the input changes (its implicit subject, see `diffs`)."""
        return frozenset().union(*(part.detail.names | part.detail.broken
                                   for part in self.parts
                                   if isinstance(part.detail, diffs.DiffStructure)))

    @cached_property
    def broken_names(self) -> frozenset[str]:
        """The changed names whose callers must change (`diffs.broken_names`)."""
        return frozenset().union(*(part.detail.broken for part in self.parts
                                   if isinstance(part.detail, diffs.DiffStructure)))

    def delimiters(self, profile: "Profile") -> set[str]:
        """Every delimiter a gap in this input may get."""
        counted = any(part.detail is not None for part in self.parts)
        return {profile.delimiter, profile.prose_gap_delimiter} | {
            profile.delimiter_for(p.language) for p in self.parts} | (
            set(records.WIDEST_NOTES) if counted else set())


# the languages of dump files whose bodies are read for a kind (`describe`)
UNTYPED_FILES = (None, "text")


def is_code(language: str | None, line_mode: bool) -> bool:
    return line_mode if language is None else language not in dumps.PROSE


def describe(text: str, *, line_mode: bool, kind: str = "auto",
             sections: tuple[tuple[int, int], ...] = ()) -> Layout:
    """Parts tiling `text` (see the module docstring); `line_mode`: the profile snaps to
    lines; `kind`: what an input that is no dump is (`settings.KINDS`; auto: read from
    it); `sections`: stretches each of its own kind (chat messages joined in one text)."""
    dump = dumps.detect(text) if kind == "auto" and not sections else dumps.Dump(None, ())
    return Layout(dump, tuple(_read_code(text, part) for part in _parts(
        text, dump, line_mode=line_mode, kind=kind, sections=sections)))


def _parts(text: str, dump: dumps.Dump, *, line_mode: bool, kind: str,
           sections: tuple[tuple[int, int], ...]) -> tuple[Part, ...]:
    if sections:
        return _sections(text, sections, kind)
    if not dump.files:
        chat = query.transcript(text) if kind == "auto" else None
        if chat is not None:
            return _chat_parts(text, chat)
        return _content_parts(text, 0, len(text), kind, unknown_is_code=line_mode)
    pieces = [Part(start, end, required=True) for start, end in dump.frame]
    for file in dump.files:
        code = is_code(file.language, line_mode)
        if file.language in UNTYPED_FILES:
            # a file whose path names no language, or names plain text (`ci-output.txt`),
            # may hold a log or data: its body is read like any stretch of text
            body = _content_parts(text, file.body_start, file.body_end,
                                  unknown_is_code=code and file.language is None)
            body = tuple(replace(part, language=file.language) if part.language is None else part
                         for part in body)
        else:
            body = (Part(file.body_start, file.body_end, file.language, code,
                         detail=_detail(text, file.body_start, file.body_end, file.language)),)
        pieces += [Part(file.start, file.body_start, file.language, code, required=True),
                   *body, Part(file.body_end, file.end, file.language, code, required=True)]
    parts, cursor = [], 0
    for piece in sorted((p for p in pieces if p.start < p.end), key=lambda p: p.start):
        if piece.start > cursor:  # text around the files: a preamble, a closing question
            parts += _content_parts(text, cursor, piece.start)
        parts.append(piece)
        cursor = piece.end
    if cursor < len(text):
        parts += _content_parts(text, cursor, len(text))
    return tuple(parts)


def _read_code(text: str, part: Part) -> Part:
    """`part` with its symbols, when it is code that selection chunks (`outline.symbols`)."""
    if not part.code or part.required or part.detail is not None:
        return part
    found = outline.symbols(text[part.start:part.end], part.language)
    return replace(part, symbols=syntax.Symbols(
        [_shifted(definition, part.start) for definition in found.definitions],
        [(offset + part.start, name) for offset, name in found.references]))


def _shifted(definition: outline.Definition, offset: int) -> outline.Definition:
    return replace(definition, signature=tuple(p + offset for p in definition.signature),
                   body=tuple(p + offset for p in definition.body))


def _sections(text: str, sections: tuple[tuple[int, int], ...], kind: str) -> tuple[Part, ...]:
    """Each section's parts of the kinds it reads as, the text between them prose."""
    parts, cursor = [], 0
    for start, end in sorted(sections):
        if cursor < start:
            parts.append(Part(cursor, start))
        parts += _content_parts(text, start, end, kind)
        cursor = max(cursor, end)
    if cursor < len(text):
        parts.append(Part(cursor, len(text)))
    return tuple(parts)


def _content_parts(text: str, start: int, end: int, kind: str = "auto", *,
                   unknown_is_code: bool = False, required: bool = False) -> tuple[Part, ...]:
    """Parts of a stretch whose kinds the text itself says (`kinds.regions`: data with
    prose around it), or of `kind` when not auto; text of no kind found is prose, or
    code when `unknown_is_code` (a whole input, under a profile that snaps to lines)."""
    if kind == "auto":
        found = [(start + a, start + b, language)
                 for a, b, language in kinds.regions(text[start:end])]
    else:
        found = [(start, end, None if kind == "text" else kind)]
    return tuple(Part(a, b, language, is_code(language, unknown_is_code and len(found) == 1),
                      required, _detail(text, a, b, language)) for a, b, language in found)


def _detail(text: str, start: int, end: int, language: str | None
            ) -> logs.LogStructure | structured.BlockPlan | diffs.DiffStructure | None:
    """A log's entries, data's blocks or a diff's hunks; None for other languages, and
    for data that does not parse (it is then cut on lines like any code)."""
    try:
        if language == "diff":
            return diffs.DiffStructure.of(text, start, end)
        if language == "log":
            return logs.LogStructure.of(text, start, end)
        if language == "json":
            return structured.blocks(text, structured.parse(text, start), start, end)
        if language == "jsonl":
            lines = structured.json_lines(text[start:end])
            if lines is not None:
                return structured.line_blocks(text, [(a + start, b + start) for a, b in lines])
        if language == "yaml":
            return yaml_data.blocks(text, start, end)
    except (structured.NotJSON, yaml_data.NotYAML):
        pass
    return None


def _chat_parts(text: str, chat: query.Transcript) -> tuple[Part, ...]:
    """A transcript's turns: markers, system turns and the last user turn required
    (that turn's question alone when it is long), every other turn's content of the
    kind it reads as (a tool's log, JSON, else prose)."""
    last = chat.last_user
    parts = [Part(0, chat.turns[0].start)]
    for turn in chat.turns:
        required = turn.kind == "system" or (
            turn == last and not query.is_long_turn(text[turn.content_start:turn.content_end]))
        parts += [Part(turn.start, turn.content_start, required=True),
                  *_content_parts(text, turn.content_start, turn.content_end, required=required),
                  Part(turn.content_end, turn.end, required=True)]
    return tuple(part for part in parts if part.start < part.end)

