"""Units of logs and structured data: their segments, priors, needs and counted gaps.

A log part (`logs.LogStructure`) is cut into its entries, each one unit (an entry
longer than `LONG_ENTRY_CHARS`, a long failure section, is chunked on its lines); a
diff (`diffs.DiffStructure`) into its file headers and hunks the same way. A
data part (`structured.BlockPlan`) is cut into its blocks (a string longer than
`LONG_VALUE_CHARS` is chunked on words: the one place a value is ever cut).

Priors, per unit, fused with the question's signals by `evidence`:

    novelty[u]   how rare the template of u's entries is: log(entries / entries of that
                 template), the first entry of a template getting half of the log of its
                 count back, so the many lines of one template leave one kept example
    severity[u]  the most severe of u's entries (`logs.severity`)
    shape[u]     in data: 1 for the openings of split containers (the keys that lead
                 everywhere) and for the first record of each array of records, so that
                 data whose question names no record keeps its shape

Needs: a kept data block needs the blocks that open the containers above it, so a
kept value shows the keys that lead to it. Groups: the blocks of one record share a
group, which `evidence` scores as a whole (a question names the record by one field
and asks for another). Identities: the one-word values that no other record of the
same container holds under the same key (`"name": "pip"` where `"installer": "pip"` is
in every record), and the key of a record keyed by name (`"node_modules/debug": {`): a
question naming one names its record. Lineages: a record's first unit holds the
identities of the record it lies in (npm's `debug` inside `express`), so that "debug,
a dependency of express" can tell that copy from the others (`evidence.identity_hits`).

Gaps say what went: in a log, `[... 412 more lines like this ...]` when every omitted
entry has the template of the entry kept before it, else `[... 30 lines ...]`; in data,
`[... 38 more records ...]` (or items, or keys) when the gap is whole members of one
container, else the profile's delimiter.
"""

import math
import re
from collections import Counter
from bisect import bisect_right

import numpy as np

from crossprefill_cli.text import diffs, logs, structured
from crossprefill_cli.units import chunks

LONG_ENTRY_CHARS = 1200
LONG_VALUE_CHARS = 4 * structured.MAX_BLOCK_CHARS
LONG_HUNK_CHARS = 4000
PRIORS = ("novelty", "severity", "shape")
# a member whose value is a string or a scalar, as `"key": value`
SCALAR_MEMBER = re.compile(r'"((?:[^"\\]|\\.)*)"\s*:\s*("(?:[^"\\]|\\.)*"|[-+\w.]+)')
# the same in YAML, `key: value` on one line (a value in quotes without them)
YAML_MEMBER = re.compile(r"""(?<![^\s-])([\w.$@/-]+|"[^"\n]*"|'[^'\n]*'):[ \t]+["']?"""
                         r"""([^\s"'#|>&*!\[{][^\s"'#]*)["']?[ \t]*(?:#[^\n]*)?$""", re.MULTILINE)
MEMBERS = {"json": SCALAR_MEMBER, "yaml": YAML_MEMBER}
MAX_IDENTITY_CHARS = 100
# the widest counted gaps, to price a gap in a log or data conservatively
WIDEST_NOTES = ("[... 99999 more lines like this ...]", "[... 99999 more records ...]")
MEMBER_NAMES = {"records": "records", "array": "items", "object": "keys"}


def segments(detail, low: int, high: int) -> list[chunks.Segment]:
    """The segments of the log entries or data blocks of `detail` within [low, high)."""
    if isinstance(detail, logs.LogStructure):
        pieces = [(entry.start, entry.end, LONG_ENTRY_CHARS, "line") for entry in detail.entries]
    elif isinstance(detail, diffs.DiffStructure):
        pieces = [(start, end, LONG_HUNK_CHARS, "line") for start, end in detail.pieces]
    else:
        cut = "line" if detail.syntax == "yaml" else "word"  # YAML's long values are blocks of lines
        pieces = [(block.start, block.end, LONG_VALUE_CHARS, cut) for block in detail.blocks]
    result = []
    for start, end, longest, boundary in pieces:
        start, end = max(start, low), min(end, high)
        if start < end:
            result.append(chunks.Segment(start, end, boundary if end - start > longest else None))
    return result


def log_signals(text: str, units: list[chunks.Unit], detail: logs.LogStructure,
                signals: dict[str, np.ndarray]) -> None:
    """Add the novelty and severity of a log part's entries to its units' (in place)."""
    unit_at = chunks.unit_finder(units)
    counts = Counter(detail.template_ids)
    total, seen = len(detail.entries), set()
    novelty, severity = signals["novelty"], signals["severity"]
    for entry, template in zip(detail.entries, detail.template_ids):
        rarity = math.log(total / counts[template])
        if template not in seen:
            rarity += math.log(counts[template]) / 2
            seen.add(template)
        for index in range(unit_at(entry.start), unit_at(entry.end - 1) + 1):
            novelty[index] = max(novelty[index], rarity)
            if not severity[index]:
                unit = units[index]
                severity[index] = logs.severity(text[unit.start:unit.end])


def data_plan(text: str, units: list[chunks.Unit], detail: structured.BlockPlan,
              signals: dict[str, np.ndarray], groups: np.ndarray,
              needed: list[set[int]], identities: list[str],
              lineages: list[str] | None = None) -> None:
    """Add a data part's shape signal, record groups, path needs, identities and
    lineages (the names of the record each record lies in, at its first unit) in place:
    see the module docstring."""
    unit_at = chunks.unit_finder(units)
    blocks = detail.blocks
    member = MEMBERS[detail.syntax]
    pairs = [member.findall(text, block.start, block.end) for block in blocks]
    # a value names its record among the records of its container (-1: outside any)
    where = [blocks[block.record].parent if block.record >= 0 else -1 for block in blocks]
    counts = Counter((container, *pair) for container, found in zip(where, pairs)
                     for pair in found)
    keys = record_keys(text, detail)
    own: dict[int, list[str]] = {}  # record (its first block) -> the values that name it
    for position, (block, found) in enumerate(zip(blocks, pairs)):
        names = [value.strip('"') for key, value in found
                 if counts[where[position], key, value] == 1 and len(value) <= MAX_IDENTITY_CHARS
                 and not any(c.isspace() for c in value)]
        key = keys.get(position)
        if key and len(key) <= MAX_IDENTITY_CHARS:
            names.append(key)
        if names:
            index = unit_at(block.start)
            identities[index] = " ".join([identities[index], *names]).strip()
            own.setdefault(block.record, []).extend(names)
    if lineages is not None:
        for position, block in enumerate(blocks):
            if block.record == position:
                parent = _parent_record(detail, position)
                index = unit_at(block.start)
                if parent >= 0:
                    lineages[index] = " ".join(own.get(parent, []))
    first_records: dict[int, int] = {}  # container -> its first record
    for position, block in enumerate(blocks):
        if block.record == position:  # a record's first block
            first_records.setdefault(block.parent, position)
    firsts = set(first_records.values())
    for block in blocks:
        index = unit_at(block.start)
        if block.role == "open" or block.record in firsts:
            signals["shape"][index] = 1.0
        if block.record >= 0:
            groups[index] = unit_at(blocks[block.record].start)
        needed[index].update(unit_at(blocks[j].start) for j in block.path)
        needed[index].discard(index)


def _parent_record(detail: structured.BlockPlan, record: int) -> int:
    """The record that the container of `record` lies in (-1: none)."""
    path = detail.blocks[record].path
    return detail.blocks[path[-1]].record if path else -1


def record_keys(text: str, detail: structured.BlockPlan) -> dict[int, str]:
    """The key of each record keyed by name (`"debug": {...}` among a lock file's
    packages), by the position of the record's first block."""
    keys = {}
    for position, block in enumerate(detail.blocks):
        if block.record == position:
            key = structured.STRING.match(text, structured.WHITESPACE.match(
                text, block.start).end(), block.end)
            if key is not None:
                keys[position] = key.group()[1:-1]
    return keys


def gap_note(text: str, detail, start: int, end: int) -> str | None:
    """What a gap [start, end) in a log or data part can say in a few words (see the
    module docstring); None: nothing to count."""
    if isinstance(detail, logs.LogStructure):
        return _log_gap(text, detail, start, end)
    if isinstance(detail, structured.BlockPlan):
        return _data_gap(detail, start, end)
    return None


def _log_gap(text: str, detail: logs.LogStructure, start: int, end: int) -> str | None:
    lines = text.count("\n", start, end) + (end == len(text) and not text.endswith("\n"))
    if not lines:  # a piece of one long line
        return None
    entry_starts = detail.starts
    first = bisect_right(entry_starts, start - 1)  # entries starting inside the gap
    last = bisect_right(entry_starts, end - 1)
    before = first - 1
    inside = set(detail.template_ids[first:last])
    whole = first < last and detail.entries[last - 1].end <= end and entry_starts[first] == start
    if whole and before >= 0 and inside == {detail.template_ids[before]}:
        return f"[... {lines} more {_plural(lines, 'line')} like this ...]"
    return f"[... {lines} {_plural(lines, 'line')} ...]"


def _data_gap(detail: structured.BlockPlan, start: int, end: int) -> str | None:
    block_starts = detail.starts
    first, last = bisect_right(block_starts, start - 1), bisect_right(block_starts, end - 1)
    if first >= last or block_starts[first] != start or detail.blocks[last - 1].end != end:
        return None
    head = detail.blocks[first]
    if head.role not in ("member", "open") or head.parent < 0:
        return None
    inner = head.path
    gone = detail.blocks[first:last]
    if any(b.path[:len(inner)] != inner or (b.parent == head.parent and b.role == "close")
           for b in gone):
        return None
    count = sum(1 for b in gone if b.parent == head.parent and b.path == inner
                and b.role in ("member", "open"))
    kind = MEMBER_NAMES[detail.containers[head.parent]]
    # after a kept member of the same container, the gap's members are more of them
    more = first > 0 and detail.blocks[first - 1].path[:len(inner)] == inner
    return f"[... {count} {'more ' if more else ''}{kind if count != 1 else kind[:-1]} ...]"


def _plural(count: int, word: str) -> str:
    return word if count == 1 else word + "s"
