"""Cutting the input into scoreable units.

A unit is a half-open character range; units tile the input exactly (every character
belongs to one unit), so any set of adjacent kept units is a verbatim substring.
The caller describes the input as segments that tile it: a segment either becomes
one unit as it is (required parts such as the head, the tail and dump file headers,
or a signature line) or is cut into chunks of `chunk_size` draft tokens. Chunks never
cross a segment edge, and no unit after the first is blank lines alone (they join the
unit before them: a gap marker standing for nothing but blank lines is noise).

Chunk edges start every `chunk_size` draft tokens and then move to the nearest
boundary the segment asks for: a line start (`line`, for code: the nearest one, even
a few lines away, nearby line starts that begin top-level code or follow a blank line
preferred; only a line longer than two chunks is cut inside, at a word boundary, so
minified code still compresses), a sentence or line start
(`sentence`, for prose: a fact stated in one sentence then sits in one chunk), a word
boundary (`word`), or stay at the token start (`token`). Moving an edge never crosses
a neighbouring edge, so no chunk becomes empty.

The head (the first `keep_head_lines` lines, at most `keep_head_tokens` draft tokens,
cut at a sentence end in Chinese and Japanese, where any character is a word boundary)
and the tail (the last `keep_tail_tokens` draft tokens) are found here too; in `line`
mode both hold whole lines only.
"""

import re
from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

from crossprefill_cli.text import scripts

# A sentence starts after a line break, after ., ! or ? (maybe closing quotes or
# brackets) and whitespace, or right after 。！？ (Chinese and Japanese put no space).
SENTENCE_START = re.compile(rf"(?:\n|[.!?][\"')\]]*\s+"
                            rf"|[{scripts.SENTENCE_END_MARKS}][{re.escape(scripts.CLOSERS)}]*\s*)(?=\S)")


# How far an edge may move to reach a word boundary; beyond that (a base64 blob, a
# minified line) the token edge is as good as any.
WORD_SEARCH_CHARS = 64
# How far an edge may move to reach a sentence start (about half a long sentence).
SENTENCE_SEARCH_CHARS = 160
# How far a code chunk edge may move to reach a better line start (a few lines).
STRUCTURE_SEARCH_CHARS = 160
BLOCK_CLOSER = re.compile(r"\s*(?:[}\])]|end\b)")


@dataclass(frozen=True)
class Unit:
    start: int
    end: int
    required: bool = False


@dataclass(frozen=True)
class Segment:
    """A stretch of the input: chunked on `boundary`, or one unit when that is None."""

    start: int
    end: int
    boundary: str | None = None
    required: bool = False


def is_word_boundary(text: str, pos: int) -> bool:
    """True unless `pos` sits between two word characters (letters, digits, _), an
    ideograph or kana beside it aside (those scripts may be cut anywhere)."""
    if pos <= 0 or pos >= len(text):
        return True
    before, after = text[pos - 1], text[pos]
    if scripts.is_unspaced(before) or scripts.is_unspaced(after):
        return True
    return not ((before.isalnum() or before == "_") and (after.isalnum() or after == "_"))


def line_start_rank(text: str, pos: int) -> int:
    """How good a chunk edge the line start `pos` is: 0 (best) to 3.

    Best is top-level code right after a blank line (a new definition, usually);
    then top-level code or anything after a blank line; a blank line, or a line that
    closes a block (`}`, `)`, `]`, `end`), is worst: a chunk that starts with a closer
    reads as a stray bracket when the chunk before it is dropped.
    """
    line_end = text.find("\n", pos)
    line = text[pos:len(text) if line_end == -1 else line_end]
    if not line.strip() or BLOCK_CLOSER.match(line):
        return 3
    previous_start = text.rfind("\n", 0, max(pos - 1, 0)) + 1
    after_blank = pos > 0 and not text[previous_start:pos].strip()
    return (not after_blank) + line[0].isspace()


def snap(text: str, pos: int, low: int, high: int, boundary: str) -> int | None:
    """Move `pos` to the nearest `boundary` strictly inside (low, high).

    `line` is strict: None when no line starts inside the range. The others fall back
    from sentence to word to the original position when nothing suitable lies inside.
    """
    if boundary == "line":
        return _snap_to_line(text, pos, low, high)
    if boundary == "sentence":
        # An edge may not take back more than half of its chunk: "1.6.1 2.0" looks like
        # sentence ends everywhere and would otherwise leave chunks of a few characters.
        floor = low + max(1, (pos - low) // 2)
        candidates = [m.end() for m in SENTENCE_START.finditer(
            text, max(low, pos - SENTENCE_SEARCH_CHARS), min(high, pos + SENTENCE_SEARCH_CHARS))
            if floor <= m.end() < high]
        if candidates:
            return min(candidates, key=lambda p: (abs(p - pos), p))
        boundary = "word"
    if boundary == "word":
        for distance in range(min(WORD_SEARCH_CHARS, max(pos - low, high - pos))):
            for candidate in (pos - distance, pos + distance):
                if low < candidate < high and is_word_boundary(text, candidate):
                    return candidate
    return pos


def _snap_to_line(text: str, pos: int, low: int, high: int) -> int | None:
    near_low, near_high = max(low, pos - STRUCTURE_SEARCH_CHARS), min(high, pos + STRUCTURE_SEARCH_CHARS)
    nearby = [m.end() for m in re.finditer("\n", text[near_low:near_high])]
    nearby = [near_low + p for p in nearby if low < near_low + p < high]
    if nearby:
        return min(nearby, key=lambda p: (line_start_rank(text, p), abs(p - pos), p))
    before = text.rfind("\n", low, pos)  # a line starts right after a newline
    after = text.find("\n", pos - 1, high - 1)
    candidates = [p + 1 for p in (before, after) if p != -1 and low < p + 1 < high]
    return min(candidates, key=lambda p: (abs(p - pos), p)) if candidates else None


def head_end(text: str, starts: np.ndarray, *, lines: int, max_tokens: int, boundary: str) -> int:
    """End of the required head: `lines` lines, cut after `max_tokens` draft tokens.

    The cut lands on a word boundary, or in `line` mode on the last whole line within
    the cap (possibly no line at all).
    """
    if lines == 0 or max_tokens == 0:
        return 0
    end = 0
    for _ in range(lines):
        newline = text.find("\n", end)
        end = len(text) if newline == -1 else newline + 1
        if end == len(text):
            break
    if np.searchsorted(starts, end) > max_tokens:
        cap = int(starts[max_tokens])
        if boundary == "line":
            return text.rfind("\n", 0, cap) + 1
        if boundary != "token" and scripts.is_unspaced(text[cap]):
            # every character is a word boundary there: end with a whole sentence
            whole = [m.end() for m in SENTENCE_START.finditer(text, cap // 2, cap + 1)]
            if whole:
                return whole[-1]
        end = snap(text, cap, 0, end, "token" if boundary == "token" else "word")
    return end


def tail_start(text: str, starts: np.ndarray, *, tokens: int, low: int, boundary: str) -> int:
    """Start of the required tail: the last `tokens` draft tokens, snapped, not before `low`.

    In `line` mode a tail that cannot start at a line start is empty.
    """
    if tokens == 0 or len(starts) == 0:
        return len(text)
    if tokens >= len(starts):
        return low
    start = snap(text, int(starts[-tokens]), low, len(text), boundary)
    return len(text) if start is None else max(low, start)


def chunk_edges(text: str, starts: np.ndarray, start: int, end: int, *, chunk_size: int,
                boundary: str) -> list[int]:
    """Edges of the chunks of [start, end): every `chunk_size` tokens, snapped."""
    first = int(np.searchsorted(starts, start))
    last = int(np.searchsorted(starts, end))
    edges = [start]
    for index in range(first + chunk_size, last, chunk_size):
        nominal = int(starts[index])
        chunk_chars = nominal - int(starts[index - chunk_size])
        if nominal - edges[-1] < chunk_chars // 2:
            continue  # the last edge snapped forward past most of this chunk already
        if boundary == "line" and _line_length(text, nominal) > 2 * chunk_chars:
            # a line of several chunks (minified code, one-line data) is cut inside, at a
            # word boundary, else at the token edge
            edge = snap(text, nominal, edges[-1], end, "word")
        else:
            edge = snap(text, nominal, edges[-1], end, boundary)
        # an edge after nothing but blanks (a long line's indentation) makes no chunk
        if edge is not None and edges[-1] < edge < end and text[edges[-1]:edge].strip():
            edges.append(edge)
    while len(edges) > 1 and not text[edges[-1]:end].strip():
        edges.pop()  # trailing blank lines stay with the chunk before them
    return edges + [end]


def _line_length(text: str, pos: int) -> int:
    line_end = text.find("\n", pos)
    return (len(text) if line_end == -1 else line_end) - (text.rfind("\n", 0, pos) + 1)


def build_units(text: str, starts: np.ndarray, segments: list[Segment], *,
                chunk_size: int) -> list[Unit]:
    """Tile the text into units, segment by segment (see the module docstring)."""
    units: list[Unit] = []
    for segment in segments:
        if segment.start == segment.end:
            continue
        if units and not text[segment.start:segment.end].strip():
            # a gap marker standing for blank lines alone would only add noise
            units[-1] = Unit(units[-1].start, segment.end, units[-1].required)
            continue
        if segment.boundary is None:
            units.append(Unit(segment.start, segment.end, segment.required))
            continue
        edges = chunk_edges(text, starts, segment.start, segment.end, chunk_size=chunk_size,
                            boundary=segment.boundary)
        units += [Unit(a, b) for a, b in zip(edges[:-1], edges[1:])]
    return units


def unit_finder(units: list[Unit]):
    """The index of the unit that holds a character offset."""
    unit_starts = [unit.start for unit in units]
    return lambda position: bisect_right(unit_starts, position) - 1


def token_units(starts: np.ndarray, units: list[Unit]) -> np.ndarray:
    """Index of the unit holding each token (by the token's first character)."""
    unit_starts = np.asarray([unit.start for unit in units], dtype=np.int64)
    return np.searchsorted(unit_starts, starts, side="right") - 1


def unit_scores(importance: np.ndarray, token_unit: np.ndarray, n_units: int) -> np.ndarray:
    """Mean importance of the tokens in each unit (0 for a unit with no tokens).

    token_unit[i] is the index of the unit that token i belongs to.
    """
    totals = np.bincount(token_unit, weights=importance, minlength=n_units)
    counts = np.bincount(token_unit, minlength=n_units)
    return np.divide(totals, counts, out=np.zeros(n_units), where=counts > 0)
