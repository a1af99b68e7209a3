"""The input's structure, turned into units that selection can choose from.

`describe` reads the input as parts that tile it: for a repository dump (see
`dumps`), each file's header, body and footer plus the text around the files; for a
chat transcript (see `query`), each turn's header, content and footer, where the
markers, system turns and the last user turn are required (a long last turn: only its
question, which `carve` makes required like any span the caller must keep); for
anything else, one anonymous part. A part is *code* when its language is a known
programming or data language (or, for an undelimited input of unknown language, when
the profile snaps to lines) and prose otherwise (a dump's preamble and the text between
its files are prose); code is chunked on line starts, prose on the profile's boundary.

`units` then cuts the parts into units:

- the head, the tail, every file header and footer and the dump's frame are required
  units, so a file with nothing kept still shows its header (and closing markup);
- in code, every signature line(s) of a definition (see `outline`) is a unit of its
  own (with the blank lines before it, so no gap stands for blank lines alone), and a
  unit that lies in a definition's body *needs* that signature unit, so selection
  keeps "def parse(...):" above any kept line of `parse`. The needs of required units
  are required too;
- in prose, each fence line of a fenced code block (see `markdown`) is a unit; a unit
  inside the block needs both fences and each fence needs the other, so the output's
  Markdown stays balanced; the block's code is chunked on lines;
- each line of a dump's directory tree (see `dumps`) is a unit, its title and closing
  markup too, so its top levels can be kept without its depths (`tree_units`);
- the rest is chunked (chunks never cross a part or a signature).

The delimiter of a gap is that of the part the gap starts in: in code, the profile's
`language_delimiters` entry for a file's language, or its plain `delimiter`; in prose,
and in a dump's file of unknown language, its `prose_delimiter`: that file's comment
syntax is unknown, and a comment marker (`// omitted`) would claim one.

`cover_definitions` gives selection function-level coverage (the `code` profile's
`cover_definitions`): a unit in a definition's body scores at least what the
definition's signature scores. When the query names a function, the draft attends to
its signature; the body, where the bug is, then comes along instead of being ranked
chunk by chunk on its own.

`named_units` finds the units of the definitions a query names outright (the `code`
profile's `favour_named_definitions`): "why does `parse_header` fail?" is about
`parse_header`, whatever a small draft's attention makes of it, so selection takes
those definitions before anything else (their signatures first, so that every named
function shows, then their bodies in the scores' order, within the budget), as code
tools rank the symbols a question mentions.
"""

from bisect import bisect_right
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from crossprefill_cli.text import (diffs, dumps, kinds, logs, markdown, outline, query,
                                   structured, syntax, yaml_data)
from crossprefill_cli.units import chunks, graph, records

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


def carve(parts: tuple[Part, ...], spans: tuple[tuple[int, int], ...]) -> tuple[Part, ...]:
    """`parts` with every stretch inside one of `spans` made a required part of its own
    (the spans in order, each from where the ones before it end). One sweep: a chat of
    100,000 messages has as many spans as parts."""
    pieces, reached = [], 0
    for start, end in sorted(spans):
        start = max(start, reached)
        if start < end:
            pieces.append((start, end))
            reached = end
    starts = [start for start, _ in pieces]
    carved = []
    for part in parts:
        first = max(bisect_right(starts, part.start) - 1, 0)
        cursor, cut = part.start, []
        for start, end in pieces[first:]:
            if start >= part.end:
                break
            low, high = max(start, cursor), min(end, part.end)
            if part.required or low >= high:
                continue
            if cursor < low:
                cut.append((cursor, low, False))
            cut.append((low, high, True))
            cursor = high
        if not cut:
            carved.append(part)
            continue
        if cursor < part.end:
            cut.append((cursor, part.end, False))
        carved += [replace(part, start=a, end=b, required=r) for a, b, r in cut]
    return tuple(carved)


def on_lines(text: str, structure: Layout, span: tuple[int, int], prose_boundary: str
             ) -> tuple[int, int]:
    """`span` widened to whole lines at each end that lies in text chunked on lines.

    A kept stretch need not start at a line start (a detected question is trimmed, so
    "    return x" is kept from "return"); in code that would drop the indentation,
    cut the code's lines and change what Python means.
    """
    start, end = span
    if start < end and structure.boundary_at(start, prose_boundary) == "line":
        start = text.rfind("\n", 0, start) + 1
    if start < end and structure.boundary_at(end - 1, prose_boundary) == "line":
        newline = text.find("\n", end - 1)
        end = len(text) if newline == -1 else newline + 1
    return start, end


def _prose_segments(text: str, part: Part, low: int, high: int, boundary: str,
                    fences: list[markdown.FencedBlock]) -> list[chunks.Segment]:
    """Prose chunked on `boundary`; each fence line of a fenced block a unit of its own
    and the block's code chunked on lines."""
    result, cursor = [], low
    for block in markdown.fenced_blocks(text, part.start, part.end):
        fences.append(block)
        for start, end, kind in ((block.open_start, block.open_end, None),
                                 (block.open_end, block.close_start, "line"),
                                 (block.close_start, block.close_end, None)):
            start, end = max(start, cursor), min(end, high)
            if start < end:
                if cursor < start:
                    result.append(chunks.Segment(cursor, start, boundary))
                result.append(chunks.Segment(start, end, kind))
                cursor = end
    if cursor < high:
        result.append(chunks.Segment(cursor, high, boundary))
    return result


def segments(text: str, structure: Layout, *, head: int, tail: int, prose_boundary: str,
             keep: tuple[tuple[int, int], ...] = ()
             ) -> tuple[list[chunks.Segment], list[outline.Definition], list[markdown.FencedBlock]]:
    """Segments tiling the text, the definitions found in its code parts and the fenced
    blocks in its prose; the stretches in `keep` are required (on whole lines where the
    text is chunked on lines)."""
    found: list[outline.Definition] = []
    fences: list[markdown.FencedBlock] = []
    result = [chunks.Segment(0, head, required=True)]
    keep = tuple(on_lines(text, structure, span, prose_boundary) for span in keep)
    for part in carve(structure.parts, keep):
        low, high = max(part.start, head), min(part.end, tail)
        if low >= high:
            continue
        if part.required:
            result.append(chunks.Segment(low, high, required=True))
            continue
        if part.detail is not None:
            result += records.segments(part.detail, low, high)
            continue
        if not part.code:
            result += _prose_segments(text, part, low, high, prose_boundary, fences)
            continue
        cursor = low
        for definition in part.symbols.definitions:
            if not part.start <= definition.signature[0] < part.end:
                continue  # the part was carved: this one is in another piece
            found.append(definition)
            start, end = max(definition.signature[0], cursor), min(definition.signature[1], high)
            if not text[cursor:start].strip():  # blank lines before a definition go with it
                start = cursor
            if start < end:
                result += [chunks.Segment(cursor, start, "line"), chunks.Segment(start, end)]
                cursor = end
        result.append(chunks.Segment(cursor, high, "line"))
    result.append(chunks.Segment(tail, len(text), required=True))
    return _cut_out(result, _tree_lines(structure.dump.tree)), found, fences


def _tree_lines(tree: dumps.DirectoryTree | None) -> list[tuple[int, int]]:
    """Every line of the tree, markup and entries, in order."""
    if tree is None:
        return []
    return sorted([*tree.markup, *((start, end) for start, end, _ in tree.entries)])


def _cut_out(planned: list[chunks.Segment], spans: list[tuple[int, int]]) -> list[chunks.Segment]:
    """`planned` with each of `spans` (sorted, disjoint) that lies in a chunked segment cut
    out of it as a unit of its own."""
    ends = [end for _, end in spans]
    result = []
    for segment in planned:
        if segment.boundary is None:
            result.append(segment)
            continue
        cursor = segment.start
        for index in range(bisect_right(ends, segment.start), len(spans)):
            start, end = max(spans[index][0], cursor), min(spans[index][1], segment.end)
            if start >= segment.end:
                break
            if start < end:
                if cursor < start:
                    result.append(chunks.Segment(cursor, start, segment.boundary))
                result.append(chunks.Segment(start, end))
                cursor = end
        if cursor < segment.end:
            result.append(chunks.Segment(cursor, segment.end, segment.boundary))
    return result


def _shifted(definition: outline.Definition, offset: int) -> outline.Definition:
    return replace(definition, signature=tuple(p + offset for p in definition.signature),
                   body=tuple(p + offset for p in definition.body))


def needs(units: list[chunks.Unit], definitions: list[outline.Definition]) -> list[tuple[int, ...]]:
    """For each unit, the units holding the signatures of the definitions it sits in."""
    unit_at = chunks.unit_finder(units)
    needed: list[set[int]] = [set() for _ in units]
    for definition in definitions:
        signature_unit = unit_at(definition.signature[0])
        body_start, body_end = definition.body
        for index in range(unit_at(body_start), unit_at(body_end - 1) + 1):
            if index != signature_unit:
                needed[index].add(signature_unit)
    return [tuple(sorted(n)) for n in needed]


def fence_needs(units: list[chunks.Unit], blocks: list[markdown.FencedBlock]
                ) -> list[tuple[int, ...]]:
    """For each unit, the units holding the fences of the block it sits in; each fence
    needs the other, so kept Markdown stays balanced."""
    unit_at = chunks.unit_finder(units)
    needed: list[set[int]] = [set() for _ in units]
    for block in blocks:
        fence_units = {unit_at(block.open_start)} | (
            {unit_at(block.close_start)} if block.closed else set())
        inside = range(unit_at(block.open_start), unit_at(max(block.close_start - 1, 0)) + 1)
        for index in set(inside) | fence_units:
            needed[index] |= fence_units - {index}
    return [tuple(sorted(n)) for n in needed]


def named_units(units: list[chunks.Unit], definitions: list[outline.Definition],
                names: set[str]) -> dict[int, int]:
    """The units of every definition (signature and body) whose name is in `names`, each
    with its tier: 2 for a signature's units, 1 for a body's."""
    unit_at = chunks.unit_finder(units)
    tiers: dict[int, int] = {}
    for definition in definitions:
        if definition.name not in names:
            continue
        signature_end = unit_at(definition.signature[1] - 1)
        for index in range(unit_at(definition.signature[0]), unit_at(definition.body[1] - 1) + 1):
            tiers[index] = max(tiers.get(index, 0), 2 if index <= signature_end else 1)
    return tiers


def tree_units(units: list[chunks.Unit], tree: dumps.DirectoryTree, deepest: int
               ) -> dict[int, int]:
    """The units of the tree's markup and of its entries down to depth `deepest`, each
    with its rank, highest first: the markup, then the top level, then each level below."""
    unit_at = chunks.unit_finder(units)
    ranked = [(span, deepest + 1) for span in tree.markup] + [
        ((start, end), deepest - depth) for start, end, depth in tree.entries if depth <= deepest]
    return {index: rank for (start, end), rank in ranked
            for index in range(unit_at(start), unit_at(end - 1) + 1)}


@dataclass(frozen=True)
class UnitPlan:
    """What selection chooses from: the units, what each needs kept with it (signatures
    and fences), the signatures alone (for `cover_definitions`), and the definitions."""

    units: list[chunks.Unit]
    needs: list[tuple[int, ...]]
    signatures: list[tuple[int, ...]]
    definitions: list[outline.Definition]
    priors: dict[str, np.ndarray]  # per unit: `records.PRIORS`, zeros outside logs and data
    groups: np.ndarray  # per unit: the record it lies in (-1: none)
    names: list[str]  # per unit: the names of the definitions whose signatures it holds
    identities: list[str]  # per unit: the values that name its record (`records`)
    lineages: list[str]  # per record's first unit: the values that name the records above it
    symbols: graph.SymbolGraph | None  # the code's symbol graph; None without code


def units(text: str, starts: np.ndarray, structure: Layout, *, head: int, tail: int,
          profile: "Profile", keep: tuple[tuple[int, int], ...] = ()) -> UnitPlan:
    """Units, their needs and the definitions they lie in; the stretches in `keep` and
    the needs of required units are required."""
    planned, definitions, fences = segments(text, structure, head=head, tail=tail,
                                            prose_boundary=profile.boundary, keep=keep)
    built = chunks.build_units(text, starts, planned, chunk_size=profile.chunk_size)
    signatures = needs(built, definitions)
    priors = {name: np.zeros(len(built)) for name in records.PRIORS}
    groups = np.full(len(built), -1)
    path_needs: list[set[int]] = [set() for _ in built]
    unit_at = chunks.unit_finder(built)
    names, identities, lineages = [""] * len(built), [""] * len(built), [""] * len(built)
    for definition in definitions:
        index = unit_at(definition.signature[0])
        names[index] = f"{names[index]} {definition.name}".strip()
    for part in structure.parts:
        if isinstance(part.detail, logs.LogStructure):
            records.log_signals(text, built, part.detail, priors)
        elif isinstance(part.detail, structured.BlockPlan):
            records.data_plan(text, built, part.detail, priors, groups, path_needs, identities,
                              lineages)
    unit_needs = [tuple(sorted(set(a) | set(b) | c))
                  for a, b, c in zip(signatures, fence_needs(built, fences), path_needs)]
    must = {j for unit, n in zip(built, unit_needs) if unit.required for j in n}
    built = [chunks.Unit(u.start, u.end, u.required or i in must) for i, u in enumerate(built)]
    code = [part for part in structure.parts if part.symbols is not None]
    symbols = graph.build(built, definitions,
                          [reference for part in code for reference in part.symbols.references],
                          [(part.start, part.end) for part in code]) if code else None
    return UnitPlan(built, unit_needs, signatures, definitions, priors, groups, names,
                    identities, lineages, symbols)


def cover_definitions(scores: np.ndarray, unit_needs: list[tuple[int, ...]]) -> np.ndarray:
    """Function-level coverage: a unit scores at least what the signature of the
    innermost definition it sits in scores (the last of its needs, in input order)."""
    covered = np.array(scores, dtype=np.float64)
    for index, needed in enumerate(unit_needs):
        if needed:
            covered[index] = max(covered[index], scores[needed[-1]])
    return covered
