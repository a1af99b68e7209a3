"""Fenced code blocks in prose: the pairs of fence lines that must stay balanced.

Markdown renders everything after an opening fence (three or more backticks or tildes,
indented at most three spaces) as code until a closing fence of the same character, at
least as long and with nothing after it but spaces (CommonMark); an unclosed fence runs
to the end. A compressed text that keeps one fence of a pair and drops the other turns
the rest of the output into code, or code into prose. `fenced_blocks` finds the pairs
so that `units.cutting` keeps a block's fences together with anything kept inside it.
"""

import re
from dataclasses import dataclass

FENCE_LINE = re.compile(r"(?m)^ {0,3}(?P<fence>`{3,}|~{3,})(?P<info>[^\n]*)(?:\n|\Z)")


@dataclass(frozen=True)
class FencedBlock:
    """An opening fence line [open_start, open_end) and its closing fence line
    [close_start, close_end); an unclosed block has close_start == close_end == its end."""

    open_start: int
    open_end: int
    close_start: int
    close_end: int

    @property
    def closed(self) -> bool:
        return self.close_start < self.close_end


def fenced_blocks(text: str, start: int, end: int) -> list[FencedBlock]:
    """The fenced blocks that open in text[start:end], in order."""
    blocks, opening = [], None
    for line in FENCE_LINE.finditer(text, start, end):
        fence = line.group("fence")
        if opening is None:
            if fence[0] == "`" and "`" in line.group("info"):
                continue  # an inline code span such as ```x``` opens nothing
            opening = line
        elif (fence[0] == opening.group("fence")[0] and len(fence) >= len(opening.group("fence"))
              and not line.group("info").strip()):
            blocks.append(FencedBlock(opening.start(), opening.end(), line.start(), line.end()))
            opening = None
    if opening is not None:
        blocks.append(FencedBlock(opening.start(), opening.end(), end, end))
    return blocks
