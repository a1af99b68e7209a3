"""The layout's parts cut into units: what selection chooses from, and what each unit
needs kept with it.

`units` cuts the parts of a `layout.Layout` into units:

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
- a log's entries and data's records are cut as `records` says, with their priors;
- the rest is chunked (chunks never cross a part or a signature).

The stretches the caller keeps whole (each message's first line, a detected question,
the caller's spans) are carved out of the parts as required parts of their own
(`carve`), on whole lines where the text is chunked on lines (`on_lines`), so that kept
code keeps its indentation.

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

Why this is a module apart from the layout: everything here depends on the budget (the
required tail and the messages' first lines shrink with it, see `pipeline.plan`), so it
runs once per budget over the layout that `analysis` read once per input.
"""

from bisect import bisect_right
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from crossprefill_cli.text import dumps, logs, markdown, outline, structured
from crossprefill_cli.units import chunks, graph, records
from crossprefill_cli.units.layout import Layout, Part

if TYPE_CHECKING:  # profiles are handed in; their package is above this one
    from crossprefill_cli.pipeline.profiles import Profile


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
