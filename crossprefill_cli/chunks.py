"""Cutting the input into scoreable units: a required head, chunks, a required tail.

A unit is a half-open character range; units tile the input exactly (every character
belongs to one unit), so any set of adjacent kept units is a verbatim substring.
Chunk edges start every `chunk_size` draft tokens and then move to the nearest
boundary the profile asks for: a line start (`line`, for code), a sentence or line
start (`sentence`, for prose: a fact stated in one sentence then sits in one chunk),
a word boundary (`word`), or stay at the token start (`token`). Moving an edge never
crosses a neighbouring edge, so no chunk becomes empty.

The head (the first `keep_head_lines` lines, at most `keep_head_tokens` draft tokens)
and the tail (the last `keep_tail_tokens` draft tokens) are units of their own,
marked required: instructions, titles and the closing question usually sit there.
"""

from dataclasses import dataclass

import re

import numpy as np

# A sentence starts after a line break, or after ., ! or ? (maybe closing quotes or
# brackets) and whitespace.
SENTENCE_START = re.compile(r"(?:\n|[.!?][\"')\]]*\s+)(?=\S)")


# How far an edge may move to reach a word boundary; beyond that (a base64 blob, a
# minified line) the token edge is as good as any.
WORD_SEARCH_CHARS = 64
# How far an edge may move to reach a sentence start (about half a long sentence).
SENTENCE_SEARCH_CHARS = 160


@dataclass(frozen=True)
class Unit:
    start: int
    end: int
    required: bool = False


def is_word_boundary(text: str, pos: int) -> bool:
    """True unless `pos` sits between two word characters (letters, digits, _)."""
    if pos <= 0 or pos >= len(text):
        return True
    before, after = text[pos - 1], text[pos]
    return not ((before.isalnum() or before == "_") and (after.isalnum() or after == "_"))


def snap(text: str, pos: int, low: int, high: int, boundary: str) -> int:
    """Move `pos` to the nearest `boundary` strictly inside (low, high).

    Falls back from line to word to the original position when nothing suitable
    lies inside the range.
    """
    if boundary == "line":
        before = text.rfind("\n", low, pos)  # a line starts right after a newline
        after = text.find("\n", pos - 1, high - 1)
        candidates = [p + 1 for p in (before, after) if p != -1 and low < p + 1 < high]
        if candidates:
            return min(candidates, key=lambda p: (abs(p - pos), p))
        boundary = "word"
    if boundary == "sentence":
        candidates = [m.end() for m in SENTENCE_START.finditer(
            text, max(low, pos - SENTENCE_SEARCH_CHARS), min(high, pos + SENTENCE_SEARCH_CHARS))
            if low < m.end() < high]
        if candidates:
            return min(candidates, key=lambda p: (abs(p - pos), p))
        boundary = "word"
    if boundary == "word":
        for distance in range(min(WORD_SEARCH_CHARS, max(pos - low, high - pos))):
            for candidate in (pos - distance, pos + distance):
                if low < candidate < high and is_word_boundary(text, candidate):
                    return candidate
    return pos


def head_end(text: str, starts: np.ndarray, *, lines: int, max_tokens: int, boundary: str) -> int:
    """End of the required head: `lines` lines, cut (on a boundary) after `max_tokens`."""
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
        end = snap(text, cap, 0, end, "token" if boundary == "token" else "word")
    return end


def tail_start(text: str, starts: np.ndarray, *, tokens: int, low: int, boundary: str) -> int:
    """Start of the required tail: the last `tokens` draft tokens, snapped, not before `low`."""
    if tokens == 0 or len(starts) == 0:
        return len(text)
    if tokens >= len(starts):
        return low
    return max(low, snap(text, int(starts[-tokens]), low, len(text), boundary))


def build_units(text: str, starts: np.ndarray, *, chunk_size: int, boundary: str,
                head: int, tail: int) -> list[Unit]:
    """Tile the text into [head] + chunks + [tail] (see the module docstring)."""
    units = [Unit(0, head, required=True)] if head > 0 else []
    if tail > head:
        first = int(np.searchsorted(starts, head))
        last = int(np.searchsorted(starts, tail))
        edges = [head]
        for index in range(first + chunk_size, last, chunk_size):
            edge = snap(text, int(starts[index]), edges[-1], tail, boundary)
            if edges[-1] < edge < tail:
                edges.append(edge)
        edges.append(tail)
        units += [Unit(a, b) for a, b in zip(edges[:-1], edges[1:])]
    if tail < len(text):
        units.append(Unit(tail, len(text), required=True))
    return units


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
