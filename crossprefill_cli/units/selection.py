"""Choosing units under a target-token budget, and assembling the output.

Selection is greedy by score: take units from the best down whenever the budget
allows (units of a higher priority tier first). A unit may need others (the signature
line of the function it sits in): it is taken together with every needed unit not yet
kept, or not at all, so a kept unit's needs are always kept. The cost of a choice is
the target tokens of the kept units plus one gap marker (the delimiter) for every
maximal run of dropped units, so adding a unit can also add or remove a marker.
Target-token counts are not additive (BPE merges across a join), so `fit_budget`
re-measures the assembled text exactly and corrects the budget it hands to the greedy
pass until the result is within budget and close to it.

The output is the kept spans in input order, adjacent units merged into one span,
with a gap marker wherever something was dropped (also at the start or end). Each
gap has its own delimiter (a Python file's gap reads `# ... omitted`, a Go file's
`// ... omitted`, prose `[...]`), chosen by the offset where the gap starts. The marker
is the delimiter on its own line when the gap starts at a line start, and the
delimiter between spaces otherwise, followed by a line break when the text after the
gap starts a line of the input (so a heading stays a heading); whitespace already at
the edges of the spans is reused rather than doubled, and line breaks are the input's
own (CRLF input gets CRLF markers).
"""

from dataclasses import dataclass
from typing import Callable, Sequence

MAX_FIT_ROUNDS = 8


@dataclass(frozen=True)
class Candidate:
    score: float
    cost: int
    required: bool = False
    needs: tuple[int, ...] = ()  # indices of units that must be kept along with this one
    priority: int = 0  # a higher tier is taken before any lower one, whatever the scores
    excluded: bool = False  # never taken (a file the user left out of a dump)


def gap_count(kept: Sequence[bool]) -> int:
    """Maximal runs of dropped units."""
    return sum(1 for i, k in enumerate(kept) if not k and (i == 0 or kept[i - 1]))


def estimated_cost(candidates: Sequence[Candidate], kept: Sequence[bool], gap_cost: int) -> int:
    return sum(c.cost for c, k in zip(candidates, kept) if k) + gap_cost * gap_count(kept)


def select_greedy(candidates: Sequence[Candidate], budget: int, gap_cost: int) -> list[bool] | None:
    """Required units plus the best others that fit; None if the required ones do not.

    Needs are taken as given: the caller closes them transitively, and makes the
    needs of required units required.
    """
    kept = [c.required for c in candidates]
    total = estimated_cost(candidates, kept, gap_cost)
    if total > budget:
        return None
    order = sorted((i for i, c in enumerate(candidates) if not c.required and not c.excluded),
                   key=lambda i: (-candidates[i].priority, -candidates[i].score, i))
    for i in order:
        if kept[i]:  # already taken as another unit's need
            continue
        group = [j for j in (i, *candidates[i].needs) if not kept[j]]
        delta = 0
        for j in group:
            delta += candidates[j].cost + gap_cost * _gap_change(kept, j)
            kept[j] = True
        if total + delta <= budget:
            total += delta
        else:
            for j in group:
                kept[j] = False
    return kept


def _gap_change(kept: Sequence[bool], i: int) -> int:
    """How the number of gaps changes when unit i is kept too."""
    left_dropped = i > 0 and not kept[i - 1]
    right_dropped = i < len(kept) - 1 and not kept[i + 1]
    return 1 if left_dropped and right_dropped else -1 if not left_dropped and not right_dropped else 0


def fit_budget(candidates: Sequence[Candidate], budget: int, gap_cost: int,
               measure: Callable[[list[bool]], int]) -> tuple[list[bool], int] | None:
    """The greedy choice whose exactly measured cost is the largest within budget.

    Returns (kept, exact cost), or None when even the required units do not fit.
    """
    everything = [True] * len(candidates)
    exact = measure(everything)
    if exact <= budget:
        return everything, exact
    best: tuple[list[bool], int] | None = None
    seen: dict[tuple[bool, ...], int] = {}
    aim = budget
    for _ in range(MAX_FIT_ROUNDS):
        kept = select_greedy(candidates, aim, gap_cost)
        if kept is None:
            break
        repeated = tuple(kept) in seen
        exact = seen[tuple(kept)] if repeated else measure(kept)
        seen[tuple(kept)] = exact
        if exact <= budget and (best is None or exact > best[1]):
            best = (kept, exact)
        if exact == budget or (repeated and exact <= budget):
            break
        # a choice over the budget that comes back (the aim moved too little to change
        # it) must not end the search: aim lower still
        aim += budget - exact - (1 if repeated else 0)
    if best is None:
        kept = [c.required for c in candidates]
        exact = measure(kept)
        if exact <= budget:
            best = (kept, exact)
    return best


def merge_spans(bounds: Sequence[tuple[int, int]], kept: Sequence[bool]) -> list[tuple[int, int]]:
    """Character spans of the kept units, adjacent ones merged."""
    spans: list[tuple[int, int]] = []
    for (start, end), keep in zip(bounds, kept):
        if not keep:
            continue
        if spans and spans[-1][1] == start:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return spans


def gaps_between(spans: Sequence[tuple[int, int]], length: int) -> list[tuple[int, int]]:
    """The stretches of [0, length) that the kept `spans` (sorted, apart) leave out."""
    edges = [0, *(edge for span in spans for edge in span), length]
    return [(start, end) for start, end in zip(edges[::2], edges[1::2]) if start < end]


def newline_of(text: str) -> str:
    """The input's line ending, for the markers: CRLF when most of its lines end so."""
    return "\r\n" if text.count("\r\n") * 2 > text.count("\n") else "\n"


def gap_marker(before: str, after: str, delimiter: str, *, newline: str = "\n",
               line_start: bool = False) -> str:
    """The text that stands for an omitted stretch between `before` and `after`;
    `line_start`: `after` begins a line of the input (a heading, a list item), and
    keeps doing so."""
    if not before or before.endswith("\n"):
        return delimiter + ("" if not after or after.startswith(("\n", "\r")) else newline)
    lead = "" if before[-1].isspace() else " "
    if line_start and not after.startswith(("\n", "\r")):
        return lead + delimiter + newline
    trail = "" if not after or after[0].isspace() else " "
    return lead + delimiter + trail


# the ends of the block comments that gap markers may be (HTML and XML, CSS)
BLOCK_COMMENT_ENDS = ("-->", "*/")


def referenced(marker: str, tokens: int, reference: str) -> str:
    """A gap marker that also says what the gap held and how to ask for it back:
    `[...]` becomes `[... 412 tokens · ref 7f3a9c01:120-480]`, a note such as `[... 12
    lines ...]` becomes `[... 12 lines · 412 tokens · ref ...]`, a comment such as
    `# ... omitted` gets the same words after it, and a block comment such as `<!--
    ... omitted -->` inside it (either stays a comment)."""
    info = f"{tokens:,} {'token' if tokens == 1 else 'tokens'} · ref {reference}"
    closer = next((end for end in BLOCK_COMMENT_ENDS if marker.endswith(end)), None)
    if closer is not None:
        return f"{marker[:-len(closer)].rstrip()} · {info} {closer}"
    if not marker.endswith("]"):
        return f"{marker} · {info}"
    inner = marker[:-1].rstrip()
    if inner.endswith("...") and inner.rstrip(".").rstrip() not in ("", "["):
        inner = inner[:-3].rstrip()
    return f"{inner}{' ' if inner in ('[', '[...') else ' · '}{info}]"


def marker_variants(delimiter: str, newline: str = "\n") -> list[str]:
    """Every form `gap_marker` can produce, to price a gap conservatively."""
    return [delimiter + newline, " " + delimiter + newline, " " + delimiter + " ", delimiter]


def join_spans(text: str, spans: Sequence[tuple[int, int]],
               delimiter_for: Callable[[int, int], str], *, newline: str = "\n") -> str:
    """Kept spans in order, a gap marker wherever input was omitted: the delimiter
    `delimiter_for(gap start, gap end)` gives (a count of what went, where it can say)."""
    pieces: list[str] = []
    previous_text, previous_end = "", 0
    for start, end in spans:
        if start > previous_end:
            pieces.append(gap_marker(previous_text, text[start:end],
                                     delimiter_for(previous_end, start),
                                     newline=newline, line_start=text[start - 1] == "\n"))
        previous_text, previous_end = text[start:end], end
        pieces.append(previous_text)
    if previous_end < len(text):
        pieces.append(gap_marker(previous_text, "", delimiter_for(previous_end, len(text)),
                                 newline=newline))
    return "".join(pieces)
