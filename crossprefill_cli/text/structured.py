"""Structured data (JSON, JSON Lines): recognise it, and cut it where its members end.

A text is JSON when it parses as a JSON object or array (the standard library's C
parser says so); it is JSON Lines when each of its non-blank lines (at least
`MIN_JSONL_LINES`) is a JSON object or array. Either is then read again by `parse`,
a scanner that keeps every member's character offsets, which the standard parser
does not give.

`blocks` cuts the data into whole members: a container (object or array) of at most
`MAX_BLOCK_CHARS` is one block; a bigger one is its opening (through the end of its
line: `"metadata": {`), its members, each cut the same way, and its closing bracket.
Cuts move back to the start of a member's line when only indentation precedes it, so
pretty-printed data is cut on lines and minified data after each member's comma. A
block records the containers above it (the keys that lead to it: a kept member needs
them kept) and the record it lies in (an object among objects: an array's element, or
a member of an object keyed by names; what a question asks about is usually one record;
an array of objects is records even when it holds one). Only a string too long for any budget is
ever cut inside (on words, by the caller).
"""

import json
import re
from dataclasses import dataclass
from functools import cached_property

MAX_BLOCK_CHARS = 600
MIN_JSONL_LINES = 2
MAX_DEPTH = 200
STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
SCALAR = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null")
WHITESPACE = re.compile(r"[ \t\r\n]*")


class NotJSON(ValueError):
    pass


@dataclass(frozen=True)
class Node:
    start: int  # the member's first character: its key's quote, or its value's
    end: int  # after its value
    kind: str  # "object", "array" or "value"
    children: tuple["Node", ...] = ()
    open_end: int = 0  # a container's: after its opening bracket
    close_start: int = 0  # a container's: its closing bracket


def is_json(text: str) -> bool:
    stripped = text.strip()
    if not stripped or stripped[0] not in "[{":
        return False
    try:
        json.loads(stripped)
    except ValueError:
        return False
    return True


def json_lines(text: str) -> list[tuple[int, int]] | None:
    """The (start, end) of each line of JSON Lines text (newline included); None when
    the text is not JSON Lines."""
    spans, position = [], 0
    while position < len(text):
        newline = text.find("\n", position)
        end = len(text) if newline == -1 else newline + 1
        spans.append((position, end))
        position = end
    records = [text[a:b] for a, b in spans if text[a:b].strip()]
    if len(records) < MIN_JSONL_LINES or not all(r.lstrip()[0] in "[{" for r in records):
        return None
    try:
        for record in records:
            json.loads(record)
    except ValueError:
        return None
    return spans


def parse(text: str, start: int = 0) -> Node:
    """The JSON value at `start` (after whitespace), with every member's offsets."""
    return _value(text, _skip(text, start), 0, start)


def _skip(text: str, position: int) -> int:
    return WHITESPACE.match(text, position).end()


def _value(text: str, position: int, depth: int, member_start: int) -> Node:
    if depth > MAX_DEPTH:
        raise NotJSON("nested too deeply")
    opener = text[position:position + 1]
    if opener in ("{", "["):
        closer, children = "}" if opener == "{" else "]", []
        cursor = _skip(text, position + 1)
        while text[cursor:cursor + 1] != closer:
            child_start = cursor
            if opener == "{":
                key = STRING.match(text, cursor)
                if key is None:
                    raise NotJSON(f"a key expected at {cursor}")
                cursor = _skip(text, key.end())
                if text[cursor:cursor + 1] != ":":
                    raise NotJSON(f"':' expected at {cursor}")
                cursor = _skip(text, cursor + 1)
            child = _value(text, cursor, depth + 1, child_start)
            children.append(child)
            cursor = _skip(text, child.end)
            if text[cursor:cursor + 1] == ",":
                cursor = _skip(text, cursor + 1)
            elif text[cursor:cursor + 1] != closer:
                raise NotJSON(f"',' or {closer!r} expected at {cursor}")
        return Node(member_start, cursor + 1, "object" if opener == "{" else "array",
                    tuple(children), position + 1, cursor)
    found = STRING.match(text, position) or SCALAR.match(text, position)
    if found is None:
        raise NotJSON(f"a value expected at {position}")
    return Node(member_start, found.end(), "value")


@dataclass(frozen=True)
class Block:
    start: int
    end: int
    parent: int  # index of the container it lies in (`BlockPlan.containers`), -1: none
    role: str  # "open", "close", "member" (a whole member of `parent`), or "rest"
    path: tuple[int, ...]  # the blocks that open the containers above it, outermost first
    record: int  # the record (an array's object element) it lies in, -1: none


@dataclass(frozen=True)
class BlockPlan:
    blocks: tuple[Block, ...]
    containers: tuple[str, ...]  # each split container's kind: "object", "array", "records"
    syntax: str = "json"  # how its members are written: "json", or "yaml" (`yaml_data`)

    @cached_property
    def starts(self) -> list[int]:
        return [block.start for block in self.blocks]


def _line_start(text: str, position: int, low: int) -> int:
    """`position`, moved back to its line's start when only indentation precedes it."""
    line_start = text.rfind("\n", low, position) + 1
    line_start = max(line_start, low)
    return line_start if not text[line_start:position].strip() else position


def _line_end(text: str, position: int, high: int) -> int:
    """After the newline that ends `position`'s line, when only a comma and blanks
    stand before it; else `position`."""
    rest = re.compile(r"[ \t]*,?[ \t]*\r?\n").match(text, position, high)
    return rest.end() if rest else position


class _Cutter:
    """Blocks and split containers, gathered as `blocks` visits the tree."""

    def __init__(self, text: str):
        self.text, self.found, self.containers = text, [], []

    def visit(self, node: Node, low: int, high: int, parent: int, role: str,
              path: tuple[int, ...], record: int) -> None:
        text, found = self.text, self.found
        if node.kind == "value" or high - low <= MAX_BLOCK_CHARS or not node.children:
            found.append(Block(low, high, parent, role, path, record))
            return
        # an array of objects (even of one: a package's only dependency is a record
        # like its siblings'), or an object of more than one member, all objects (records
        # keyed by a name: npm's dependencies, a lock file's packages; `"metadata": {...}`
        # alone is no record)
        is_records = (len(node.children) > (node.kind == "object")
                      and all(c.kind == "object" for c in node.children))
        self.containers.append("records" if is_records else node.kind)
        index = len(self.containers) - 1
        open_end = _line_end(text, node.open_end, high)
        found.append(Block(low, open_end, parent, "open" if role == "member" else role, path,
                           record))
        inner_path = (*path, len(found) - 1)
        cuts = [max(open_end, _line_start(text, child.start, open_end)) for child in node.children]
        close = max(cuts[-1], _line_start(text, node.close_start, open_end))
        for number, child in enumerate(node.children):
            child_end = cuts[number + 1] if number + 1 < len(cuts) else close
            self.visit(child, cuts[number], child_end, index, "member", inner_path,
                       len(found) if is_records else record)
        found.append(Block(close, high, index, "close", inner_path, record))

    def plan(self) -> BlockPlan:
        # empty blocks stay: records and paths are indices into the blocks
        return BlockPlan(tuple(self.found), tuple(self.containers))


def blocks(text: str, root: Node, start: int, end: int) -> BlockPlan:
    """Blocks tiling text[start:end], which holds `root` (see the module docstring)."""
    cutter = _Cutter(text)
    cutter.visit(root, start, end, -1, "rest", (), -1)
    return cutter.plan()


def line_blocks(text: str, lines: list[tuple[int, int]]) -> BlockPlan:
    """Blocks tiling JSON Lines: each line a record of one container."""
    cutter = _Cutter(text)
    cutter.containers.append("records")
    for start, end in lines:
        if not text[start:end].strip():
            cutter.found.append(Block(start, end, 0, "rest", (), -1))
            continue
        cutter.visit(parse(text, start), start, end, 0, "member", (), len(cutter.found))
    return cutter.plan()
