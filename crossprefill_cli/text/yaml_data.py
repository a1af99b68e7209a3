"""YAML data: recognise it, and cut it where its members end, as `structured` cuts JSON.

A text is YAML data when PyYAML's safe parser reads it (one document or a stream of
`---`-separated ones) and it is mostly structure: the lines where a mapping's key or a
sequence's entry begins hold at least `MIN_ENTRY_LINES` keys and are at least
`MIN_SHARE` of its lines that hold anything but comments, document markers and the
inner lines of block scalars (`|`, `>`), quoted strings and flow collections spanning
lines; no mapping repeats a key (YAML forbids it; text of `Name: value` records, mail
headers, `User:` / `Assistant:` turns do it all the time), and at most
`MAX_PROSE_SHARE` of the keys' one-line values are unquoted sentences of
`PROSE_WORDS` words or more (`Entry 3: the river was high that day` on every line is
prose; real files hold 0-16% such values, descriptions and commands). Plain prose is
valid YAML (one scalar), and a Markdown list is a sequence of scalars (a few with a
colon are a few keys): neither is data.

Only the parser's events are read (`yaml.parse` with the safe loader, in pure Python:
its marks are character offsets, which libyaml's are not): nothing is constructed, so
no tag builds an object and no alias is expanded. Texts over `MAX_CHARS`, or of more
than `MAX_EVENTS` events or `structured.MAX_DEPTH` levels, are not read as data.

The events become the `structured.Node` tree that `structured.blocks` cuts, so YAML
gets JSON's blocks, records, paths and counted gaps. A member starts at its key (a
mapping's) or its dash (a block sequence's entry), or at the comment lines right above
it (what documents a key goes with it; those above a collection's first member go with
its opening), and ends after its value; a block collection opens with the text before
its first member's line (`services:`, or `- ` before a record's first key on the same
line) and has no closing bracket (the rest of its last member's line, a trailing
comment, closes it); a flow collection opens and closes at its brackets as in JSON. A stream of several documents is a list of
them, each starting at its `---`, so Kubernetes manifests are records. A value, block
scalars included, is never cut inside here (one too long for any budget is chunked on
its lines by the caller).
"""

import re
from dataclasses import dataclass, replace
from functools import lru_cache

import yaml

from crossprefill_cli.text import structured

MAX_CHARS = 2_000_000
MAX_EVENTS = 400_000
MIN_ENTRY_LINES = 3
MIN_SHARE = 0.6
MAX_PROSE_SHARE = 0.5
PROSE_WORDS = 6
# cheap test before parsing: a line that could begin a key or an entry
ENTRY_LINE = re.compile(
    r"[ \t]*(?:-(?:[ \t]|$)|(?:\"[^\"\n]*\"|'[^'\n]*'|[^\s#'\"\-?:,\[\]{}][^\s:]*"
    r"(?:[ ][^\s:]+){0,2})[ \t]*:(?:[ \t]|$))")
# a line that may stand at the left margin of YAML data: an entry line as above, a
# document marker, a directive, a comment (prose lines and fences are none of these)
MARGIN_LINE = re.compile(r"(?:---|\.\.\.)(?:[ \t]|$)|%[A-Z]|#")
SPANNING_STYLES = ("|", ">", '"', "'")


class NotYAML(ValueError):
    pass


@dataclass(frozen=True)
class Reading:
    root: structured.Node
    entry_lines: int  # lines where a block mapping's key or a block sequence's entry starts
    key_lines: int  # of those, lines where a key starts
    content_lines: int  # lines that hold structure or values (see the module docstring)
    repeated_keys: int  # keys that a mapping already holds
    values: int  # keys' values that are scalars on one line
    prose_values: int  # of those, unquoted ones of `PROSE_WORDS` words or more


def is_yaml(text: str) -> bool:
    """Whether `text` is YAML data (see the module docstring)."""
    lines = [line for line in text.splitlines() if line.strip()
             and not line.lstrip().startswith("#")]
    entries = sum(1 for line in lines if ENTRY_LINE.match(line))
    if entries < MIN_ENTRY_LINES or entries < MIN_SHARE / 2 * len(lines):
        return False
    try:
        reading = parse(text, 0, len(text))
    except NotYAML:
        return False
    return _is_data(reading)


def _is_data(reading: Reading) -> bool:
    return (reading.key_lines >= MIN_ENTRY_LINES and not reading.repeated_keys
            and reading.prose_values <= MAX_PROSE_SHARE * reading.values
            and reading.entry_lines >= MIN_SHARE * reading.content_lines)


def region(text: str, min_chars: int = 0) -> tuple[int, int] | None:
    """The longest run of whole lines that may be YAML data with prose around it (lines
    at the left margin that begin a key or an entry, a marker or a comment, and the
    indented and blank lines between them), when it is YAML data of at least
    `min_chars`; else None (and None for a run with nothing around it)."""
    best, run_start, cursor, last_end = None, None, 0, 0
    for line in text.splitlines(keepends=True):
        line_end = cursor + len(line)
        stripped = line.strip()
        at_margin = stripped and not line[0].isspace()
        if at_margin and not (ENTRY_LINE.match(line) or MARGIN_LINE.match(line)):
            run_start = None  # prose at the margin ends a run
        elif stripped:
            if run_start is None and at_margin and not stripped.startswith("#"):
                run_start = cursor
            if run_start is not None:
                last_end = line_end
                if best is None or last_end - run_start > best[1] - best[0]:
                    best = (run_start, last_end)
        cursor = line_end
    if best is None or best[1] - best[0] < min_chars or not (
            text[:best[0]].strip() or text[best[1]:].strip()):
        return None
    try:
        reading = parse(text, *best)
    except NotYAML:
        return None
    return best if _is_data(reading) else None


def blocks(text: str, start: int, end: int) -> structured.BlockPlan:
    """Blocks tiling text[start:end], YAML data (see the module docstring and
    `structured.blocks`); NotYAML when it does not parse."""
    plan = structured.blocks(text, parse(text, start, end).root, start, end)
    cursor = start
    for block in plan.blocks:  # a guard: odd marks must never lose or repeat text
        if block.start != cursor or block.end < block.start:
            raise NotYAML(f"blocks do not tile the data at {cursor}")
        cursor = block.end
    if cursor != end:
        raise NotYAML("blocks do not tile the data")
    return replace(plan, syntax="yaml")


@lru_cache(maxsize=2)  # detection and cutting read the same stretch one after the other
def parse(text: str, start: int, end: int) -> Reading:
    """The YAML stream text[start:end] as a `structured.Node` tree with offsets in `text`;
    NotYAML when it does not parse or is too big."""
    if end - start > MAX_CHARS:
        raise NotYAML(f"over {MAX_CHARS} characters")
    builder = _Builder(text, start, end)
    try:
        for number, event in enumerate(yaml.parse(text[start:end], Loader=yaml.SafeLoader)):
            if number > MAX_EVENTS:
                raise NotYAML(f"over {MAX_EVENTS} events")
            builder.take(event)
    except yaml.YAMLError as error:
        raise NotYAML(str(error).splitlines()[0] if str(error) else "not YAML") from None
    return builder.reading()


class _Frame:
    """A collection being read: its members so far."""

    def __init__(self, kind: str, flow: bool, start: int, open_end: int):
        self.kind, self.flow, self.start, self.open_end = kind, flow, start, open_end
        self.children: list[structured.Node] = []
        self.key_start: int | None = None  # a mapping's: the start of the key read last
        self.keys: set[str] = set()  # a mapping's scalar keys


class _Builder:
    """Turns parser events into `structured.Node`s (see the module docstring)."""

    def __init__(self, text: str, start: int, end: int):
        self.text, self.offset, self.end = text, start, end
        self.stack: list[_Frame] = []
        self.documents: list[structured.Node] = []
        self.document_start: int | None = None
        self.entries: set[int] = set()  # line starts of keys and entries
        self.keys: set[int] = set()
        self.spanning: list[tuple[int, int]] = []  # values that may span lines
        self.flow_start = 0  # the outermost flow collection's, while one is read
        self.repeated_keys = self.values = self.prose_values = 0

    def take(self, event: yaml.Event) -> None:
        start = event.start_mark.index + self.offset if event.start_mark else self.offset
        end = event.end_mark.index + self.offset if event.end_mark else start
        if isinstance(event, yaml.DocumentStartEvent):
            self.document_start = start if event.explicit else None
        elif isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent)):
            if getattr(event, "style", None) in SPANNING_STYLES:
                self.spanning.append((start, end))
            self.done(start, end, "value", scalar=event)
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if len(self.stack) >= structured.MAX_DEPTH:
                raise NotYAML("nested too deeply")
            kind = "object" if isinstance(event, yaml.MappingStartEvent) else "array"
            flow = bool(event.flow_style)
            if flow and not any(frame.flow for frame in self.stack):
                self.flow_start = start
            self.stack.append(_Frame(kind, flow, start, end))
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            frame = self.stack.pop()
            if frame.flow:
                end_at, close = end, start
                if not any(f.flow for f in self.stack):
                    self.spanning.append((self.flow_start, end))
            else:
                end_at = frame.children[-1].end if frame.children else frame.start
                close = self._line_after(end_at)
            self.done(frame.start, end_at, frame.kind, frame, close)

    def done(self, start: int, end: int, kind: str, frame: _Frame | None = None,
             close: int = 0, scalar: yaml.ScalarEvent | yaml.AliasEvent | None = None) -> None:
        """A value read whole (`scalar`: its event, when it is one): a key, a member's
        value, an entry or a document."""
        key = getattr(scalar, "value", None)
        parent = self.stack[-1] if self.stack else None
        if parent is not None and parent.kind == "object" and parent.key_start is None:
            parent.key_start = start  # a key; its member ends with its value
            if key is not None:
                self.repeated_keys += key in parent.keys
                parent.keys.add(key)
            if not parent.flow:
                self._entry(start, key=True)
            return
        if parent is None:
            member = self.document_start if self.document_start is not None else start
        elif parent.kind == "object":
            member, parent.key_start = parent.key_start, None
            if isinstance(scalar, yaml.ScalarEvent) and "\n" not in self.text[start:end]:
                self.values += 1
                self.prose_values += (scalar.style is None
                                      and len(scalar.value.split()) >= PROSE_WORDS)
        elif parent.flow:
            member = start
        else:
            member = self._dash(start, parent)
            self._entry(member, key=False)
        if parent is not None and not parent.flow and parent.children:
            member = self._comments_above(member, parent.children[-1].end)
        if frame is None:
            node = structured.Node(member, end, "value")
        else:
            children = tuple(frame.children)
            open_end = frame.open_end if frame.flow else self._opening_end(member, children)
            node = structured.Node(member, end, kind, children, open_end, close)
        if parent is not None:
            parent.children.append(node)
        elif not (kind == "value" and start == end):  # an empty document is nothing
            self.documents.append(node)

    def _entry(self, position: int, *, key: bool) -> None:
        line = self.text.rfind("\n", 0, position) + 1
        self.entries.add(line)
        if key:
            self.keys.add(line)

    def _dash(self, start: int, parent: _Frame) -> int:
        """The dash of a block sequence's entry whose value starts at `start`."""
        low = parent.children[-1].end if parent.children else parent.start
        position = start
        while position > low and self.text[position - 1] in " \t\r\n":
            position -= 1
        return position - 1 if position > low and self.text[position - 1] == "-" else start

    def _comments_above(self, member: int, low: int) -> int:
        """The start of the comment lines right above `member`'s line and after `low`
        (what documents a key goes with it), else `member`."""
        text, line = self.text, self.text.rfind("\n", 0, member) + 1
        if text[line:member].strip():
            return member
        found = member
        while line > low:
            above = text.rfind("\n", 0, line - 1) + 1
            stripped = text[above:line].strip()
            if above < low or not stripped.startswith("#"):
                break
            found = line = above
        return found if found == member else member - len(text[found:member].lstrip())

    def _opening_end(self, member: int, children: tuple[structured.Node, ...]) -> int:
        """A block collection's opening: up to its first member's line, or up to that
        member when something (a dash, a key) stands before it on its line."""
        first = children[0].start if children else member
        line = self.text.rfind("\n", 0, first) + 1
        return line if line >= member and not self.text[line:first].strip() else first

    def _line_after(self, position: int) -> int:
        """After the newline that ends the line of the character before `position`."""
        if position > self.offset and self.text[position - 1] == "\n":
            return position
        newline = self.text.find("\n", position, self.end)
        return self.end if newline == -1 else newline + 1

    def reading(self) -> Reading:
        if not self.documents:
            raise NotYAML("no document")
        if len(self.documents) == 1:
            root = self.documents[0]
        else:
            first, last = self.documents[0].start, self.documents[-1].end
            line = self.text.rfind("\n", self.offset, first) + 1
            root = structured.Node(self.offset, last, "array", tuple(self.documents),
                                   max(line, self.offset), self._line_after(last))
        if root.kind == "value":
            raise NotYAML("a scalar, not data")
        return Reading(root, len(self.entries), len(self.keys), self._content_lines(),
                       self.repeated_keys, self.values, self.prose_values)

    def _content_lines(self) -> int:
        """Lines holding anything but comments, markers and the inner lines of values
        that span lines (see the module docstring)."""
        text, inner = self.text, set()
        for start, end in self.spanning:
            line = text.find("\n", start, end)
            while line != -1 and line + 1 < end:
                inner.add(line + 1)
                line = text.find("\n", line + 1, end)
        count, position = 0, self.offset
        while position < self.end:
            newline = text.find("\n", position, self.end)
            line_end = self.end if newline == -1 else newline
            stripped = text[position:line_end].strip()
            if (stripped and position not in inner and not stripped.startswith("#")
                    and not MARGIN_LINE.match(stripped)):
                count += 1
            position = line_end + 1
        return count
