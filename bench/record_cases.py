"""What the record benchmarks of structured data share (`bench.json_records`,
`bench.yaml_records`): checks that prove a record was kept, and cases drawn from files.

A format's module parses its documents into `Node`s, gives their `Record`s, its
question templates per kind of file, and how a member's check and a record's identity
check are found; the rest is here. A case is one file followed by
one question about ONE record, drawn with a seeded RNG among the records lying wholly
between `MARGIN` and 1 - `MARGIN` of the file, at most `PER_DOCUMENT` per file, each
about a different record with a question type drawn at random among the kind's.
"""

import gzip
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.tasks import TaskCase

MAX_CHECK = 700
MARGIN = 0.10  # records must lie between MARGIN and 1 - MARGIN of the document


@dataclass(eq=False)
class Node:
    """A value of a parsed document, with its offsets."""

    kind: str  # "object", "array" or "scalar"
    start: int
    end: int
    value: object = None  # the scalar's value
    members: list = field(default_factory=list)  # object: [Member]
    items: list = field(default_factory=list)  # array: [Node]

    def get(self, path: str):
        """The member at a dotted path of keys (a number indexes an array), or None."""
        member, node = None, self
        for part in path.split("."):
            if node is not None and node.kind == "array" and part.isdigit():
                node = node.items[int(part)] if int(part) < len(node.items) else None
                continue
            if node is None or node.kind != "object":
                return None
            member = next((m for m in node.members if m.key == part), None)
            node = member.node if member else None
        return member if node is not None else None


@dataclass(eq=False)
class Member:
    key: str
    start: int  # the key's first character
    node: Node
    siblings: list  # the members of the object it is in
    index: int
    parent: "Member | None" = None  # the member whose value holds its object (where set)

    @property
    def end(self) -> int:
        return self.node.end


@dataclass(eq=False)
class Record:
    node: Node  # the record's object
    label: str  # how the question names it
    ids: tuple = ()  # identifying member paths, best first (unkeyed records)
    keyed: Member | None = None  # the member whose key identifies the record
    questions: list | None = None  # this record's own templates (None: its kind's)

    @property
    def start(self) -> int:
        return self.keyed.start if self.keyed else self.node.start


def objects(nodes):
    return [n for n in nodes if n.kind == "object"]


def proves(text: str, check: str, record) -> bool:
    """Every occurrence of check lies inside the record."""
    if not check or len(check) > MAX_CHECK:
        return False
    at = text.find(check)
    if at < 0:
        return False
    while at >= 0:
        if at < record.start or at + len(check) > record.node.end:
            return False
        at = text.find(check, at + 1)
    return True


@dataclass(frozen=True)
class Format:
    """How one format's files become cases."""

    name: str  # "json": cases are named json/<file>/<n>
    data: Path  # the folder of its `dev-*.gz` and `test-*.gz` files
    kinds: dict  # file-name part: (records of parsed roots, [(question, member paths)])
    parse: Callable  # (text, file name) -> the roots `records` reads
    opener_end: Callable  # (text, keyed record) -> the end of its key's opening
    member: Callable  # (text, member, record) -> the member's check, or None
    per_document: int = 6

    def documents(self, split: str) -> list[Path]:
        if split not in ("dev", "test"):
            raise ValueError(f"split is dev or test, not {split!r}")
        return sorted(self.data.glob(f"{split}-*.gz"))

    def identity(self, text: str, record):
        """The identifying member (a keyed record's opening: `"key": {`, `key:`), widened
        if need be."""
        if record.keyed:
            members = record.node.members
            for last in (None, *members[:2]):  # the opener, then through its first members
                end = self.opener_end(text, record) if last is None else last.end
                if proves(text, text[record.keyed.start:end], record):
                    return text[record.keyed.start:end]
            return None
        idents = [m for m in (record.node.get(path) for path in record.ids) if m is not None]
        for member in idents:
            if proves(text, text[member.start:member.end], record):
                return text[member.start:member.end]
        return next(filter(None, (self.member(text, m, record) for m in idents)), None)

    def checks(self, text: str, record, paths) -> tuple[str, ...] | None:
        found = [self.identity(text, record)]
        for path in paths:
            member = record.node.get(path)
            if member is None:
                return None
            found.append(self.member(text, member, record))
        if None in found:
            return None
        unique = list(dict.fromkeys(found))
        return tuple(c for c in unique if not any(c != other and c in other for other in unique))

    def document_cases(self, path: Path, seed: int, kind) -> list[TaskCase]:
        doc = gzip.decompress(path.read_bytes()).decode("utf-8")
        name = path.name.removesuffix(".gz")
        records_of, questions = kind
        rng = random.Random(f"{seed}:{name}")
        lo, hi = MARGIN * len(doc), (1 - MARGIN) * len(doc)
        records = [r for r in records_of(self.parse(doc, name))
                   if lo <= r.start and r.node.end <= hi]
        rng.shuffle(records)
        cases, asked = [], set()
        for record in records:
            if len(cases) == self.per_document:
                break
            templates = record.questions or questions
            for question, paths in rng.sample(templates, len(templates)):
                question = question.format(x=record.label)
                question = question[0].upper() + question[1:]
                prompt = doc.rstrip("\n") + "\n\n" + question
                checks = self.checks(prompt, record, paths)
                if checks and question not in asked:
                    asked.add(question)
                    cases.append(TaskCase(
                        name=f"{self.name}/{name.split('.')[0]}/{len(cases) + 1}",
                        source=f"bench/data/{self.data.name}/{path.name}", text=prompt,
                        checks=checks))
                    break
        return cases


def show(cases: Callable[[str], list[TaskCase]], splits: list[str]) -> None:
    """Print each case's question and checks (a format module's `__main__`)."""
    for split in splits or ["dev", "test"]:
        for case in cases(split):
            question = case.text.rsplit("\n", 1)[-1]
            print(f"{case.name}: {question}")
            for check in case.checks:
                print(f"    {check[:120]!r}")
