"""Unified diffs (`git diff`, `git show`, `diff -u`, repomix's `--include-diffs`).

`is_diff` says a text is one when it holds a file header (`diff --git`, or `--- ` and
`+++ ` lines) followed by a hunk header (`@@ -a,b +c,d @@`). `hunks` cuts it into its
pieces: each file's header lines, and each hunk from its `@@` line to the next hunk or
file, which compression keeps or drops whole (a hunk cut in half no longer applies and
no longer reads). `changed_names` lists the identifiers a diff's changed lines define
or name, the symbols a reviewer must follow into the rest of the input; `broken_names`
those of them whose callers must change: the definition is renamed or removed, or its
parameters change in number, order or name (a type annotation added breaks no call).
"""

import re
from dataclasses import dataclass

FILE_START = re.compile(r"^(?:diff --git |diff -|--- \S|Index: )", re.MULTILINE)
HUNK_HEADER = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@", re.MULTILINE)
HEADER_LINES = ("diff ", "index ", "new file", "deleted file", "old mode", "new mode",
                "similarity", "rename ", "copy ", "Index: ", "====")
DEFINED = re.compile(r"\b(?:def|class|function|func|fn|interface|struct|enum|trait|type)\s+"
                     r"(?:\([^)]*\)\s*)?([A-Za-z_]\w*)")
PARAMETER_NAME = re.compile(r"[A-Za-z_$][\w$]*")
GENERICS = re.compile(r"\s*(?:[<\[][^()]*[>\]])?\s*")  # between a name and its `(`: `<T: Clone>`


def is_diff(text: str) -> bool:
    first_hunk = HUNK_HEADER.search(text)
    return first_hunk is not None and FILE_START.search(text, 0, first_hunk.start()) is not None


@dataclass(frozen=True)
class DiffStructure:
    """A diff part's pieces (`hunks`) and the names its changes touch."""

    pieces: tuple[tuple[int, int], ...]
    names: frozenset[str]
    broken: frozenset[str]  # the names whose callers must change (`broken_names`)

    @classmethod
    def of(cls, text: str, start: int, end: int) -> "DiffStructure":
        return cls(tuple(hunks(text, start, end)), frozenset(changed_names(text[start:end])),
                   frozenset(broken_names(text[start:end])))


def hunks(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Pieces tiling text[start:end]: text before the first file, each file's header
    lines, and each hunk (see the module docstring)."""
    cuts = {start} | {match.start() for match in HUNK_HEADER.finditer(text, start, end)}
    for match in FILE_START.finditer(text, start, end):
        previous = text[text.rfind("\n", start, max(match.start() - 1, start)) + 1:match.start()]
        # `--- a/x` after `diff --git` or `index ...` is the same file's header
        if not (match.group().startswith("---") and previous.startswith(HEADER_LINES)):
            cuts.add(match.start())
    edges = sorted(cuts) + [end]
    return [(a, b) for a, b in zip(edges, edges[1:]) if a < b]


def changed_names(text: str) -> set[str]:
    """The names the diff's changed lines define, and for a hunk whose changed lines
    define none, the name in its header's context (`@@ ... @@ def parse(`: a change
    inside `parse`): the functions and classes the change touches."""
    names: set[str] = set()
    for hunk in HUNK_HEADER.split(text)[1:]:  # what precedes the first hunk is none
        context, _, body = hunk.partition("\n")
        changed = [line for line in body.splitlines()
                   if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))]
        defined = {name for line in changed for name in DEFINED.findall(line)}
        names |= defined or set(DEFINED.findall(context))
    return names


def broken_names(text: str) -> set[str]:
    """The names whose definitions the diff renames, removes, or whose parameters it
    changes in number, order or name, read from each hunk's old and new sides."""
    broken: set[str] = set()
    for hunk in HUNK_HEADER.split(text)[1:]:  # what precedes the first hunk is none
        body = hunk.partition("\n")[2].splitlines()
        old = "\n".join(line[1:] for line in body if line.startswith((" ", "-")))
        new = "\n".join(line[1:] for line in body if line.startswith((" ", "+")))
        before, after = _signatures(old), _signatures(new)
        broken |= {name for name, parameters in before.items() if after.get(name) != parameters}
    return broken


def _signatures(code: str) -> dict[str, tuple[str, ...]]:
    """Each name `code` defines, with its parameters' names (the first identifier of each
    top-level comma-separated part between the parentheses after it; () for none)."""
    found = {}
    for match in DEFINED.finditer(code):
        opening = code.find("(", match.end(), match.end() + 80)
        if opening == -1 or not GENERICS.fullmatch(code, match.end(), opening):
            found[match.group(1)] = ()
            continue
        depth, parts, current = 0, [], []
        for char in code[opening + 1:]:
            if char in "([{<":
                depth += 1
            elif char in ")]}>":
                if depth == 0 and char == ")":
                    break
                depth -= 1
            elif char == "," and depth == 0:
                parts.append("".join(current))
                current = []
                continue
            current.append(char)
        parts.append("".join(current))
        names = [PARAMETER_NAME.search(part) for part in parts]
        found[match.group(1)] = tuple(name.group() for name in names if name)
    return found
