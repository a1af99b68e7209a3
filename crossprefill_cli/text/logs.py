"""Logs and tool output: recognise them, cut them into entries, know their templates.

A log is many short lines that tools wrote, most of them alike: timestamps, levels,
test-runner and build output. `is_log` says a text is one when at least `LOG_SHARE` of
its non-blank lines (and `MIN_LOG_LINES` of them) look written by a tool (see
`TOOL_LINE`: a leading timestamp, a level word, a test status, an install or build
step, a section rule).

An entry is a line with its continuation lines, the unit a reader thinks in:

- indented lines and blank lines belong to the entry before them (a wrapped message,
  a stack frame), but for a test's own line in nested runner output (`✔ works`,
  `1) fails`, `not ok 3`);
- a Python traceback, from `Traceback (most recent call last):` through the exception
  line that ends it, is one entry;
- a test runner's failure section (pytest's `____ test_name ____` header, unittest's
  `=====` + `FAIL: test_name` block) runs to the next section header.

Templates. Entries are grouped by their first line's template (`drain3`'s Drain tree:
tokens that vary between lines of one shape, numbers, ids, test names, become
wildcards), so `tests/a.py::test_x PASSED [ 3%]` and `tests/b.py::test_y PASSED [ 9%]`
are one template while a rare line is a template of its own. `severity` marks the
entries a reader of a failed run looks for first: errors, failures, tracebacks and
fatal lines (1), warnings (0.4), matched as words, so `test_error_handling PASSED` is
no error.
"""

import re
from dataclasses import dataclass
from functools import cached_property

MIN_LOG_LINES = 20
LOG_SHARE = 0.25
TOOL_LINE = re.compile(
    r"""\d{4}-\d\d-\d\d[T\ ]+\d\d:\d\d           # ISO timestamps, anywhere
    | ^\s*(?:
      \[?\d\d:\d\d:\d\d                        # clock times
    | [A-Z][a-z]{2}\ +\d+\ \d\d:\d\d:\d\d      # syslog
    | \#\d+\ |Step\ \d+/\d+|\$\ |\+\ \S|>\ \S+@\S+\ |npm\ (?:ERR!|WARN|notice)
    | \S+\.\w+:\d+(?::\d+)?:?\ |-->\ \S+:\d+    # diagnostics: path:line:col: message
    | [│├└┬─]+\                            # dependency trees (npm ls, cargo tree)
    | \[notice\]|\[\*\]
    | (?:Collecting|Downloading|Installing|Requirement\ already|Successfully|Building|Running|
         Using\ cached|Obtaining|Preparing|Created\ wheel|Stored\ in|Attempting|Found\ existing|
         Compiling|Finished|Checking|Fresh|Downloaded|Updating|Locking|Resolved|Audited|added|
         Unpacking|Setting\ up|Processing|Selecting|Preparing|Fetched|Get:\d|Hit:\d|Reading)\b
    | File\ ".*",\ line\ \d+|Traceback\ \(most                 # Python's tracebacks
    | [=_\-*#~]{5,}                            # section rules
    | (?:ok|not\ ok)\ \d+                      # TAP
    | (?:PASS|FAIL|ok|FAILED|ERROR)\b
    )
    | \b(?:PASSED|FAILED|SKIPPED|XFAIL|XPASS|ERROR|DEBUG|INFO|NOTICE|WARN|WARNING|CRITICAL|FATAL)\b
    | \.\.\.\ (?:ok|FAIL|ERROR|skipped|passed|failed)\b
    | \[\s*\d+%\]$                           # a test runner's progress
    | ^\s*[✓✔✗✘×]\ """,
    re.VERBOSE)
ERROR_WORDS = re.compile(
    r"(?<![\w.])(?:error|errors|failed|failure|failures|fail|fatal|exception|traceback|panic|"
    r"panicked|critical|assertionerror|segmentation fault|not ok)(?![\w.])|"
    r"^(?:E|F) {2,}|^\S*(?:Error|Exception|Failure)\b:|\bERR!|"
    r"^\s*(?:[✗✘✕×]\s|\d+\) \S|--- FAIL)", re.IGNORECASE | re.MULTILINE)
WARNING_WORDS = re.compile(r"(?<![\w.])(?:warning|warnings|warn|deprecated|deprecation)(?![\w.])|"
                           r"\w+Warning:", re.IGNORECASE)
TRACEBACK = "Traceback (most recent call last):"
# a test's own line in nested runner output (mocha, jest, TAP): indented, yet an entry
STATUS_LINE = re.compile(r"^\s*(?:[✓✔✗✘×✕√]\s|\d+\) \S|(?:ok|not ok) \d+|(?:PASS|FAIL) )")
# pytest's section of one failure, and unittest's
SECTION_HEADER = re.compile(r"^(?:_{3,} .+ _{3,}|={10,}|-{10,}|FAIL: |ERROR: )")
WARNING_SEVERITY = 0.4


@dataclass(frozen=True)
class Entry:
    start: int
    end: int
    first_line_end: int  # the entry's first line (without its newline)


def tool_line_share(text: str) -> tuple[int, float]:
    """Non-blank lines, and the share of them that look written by a tool."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return 0, 0.0
    return len(lines), sum(1 for line in lines if TOOL_LINE.search(line)) / len(lines)


def is_log(text: str) -> bool:
    count, share = tool_line_share(text)
    return count >= MIN_LOG_LINES and share >= LOG_SHARE


def entries(text: str, start: int = 0, end: int | None = None) -> list[Entry]:
    """The entries of text[start:end] (see the module docstring), tiling it."""
    end = len(text) if end is None else end
    result: list[Entry] = []
    in_traceback = in_section = False
    position = start
    while position < end:
        newline = text.find("\n", position, end)
        line_end = end if newline == -1 else newline + 1
        line = text[position:line_end].rstrip("\r\n")
        continues = bool(result) and (not line.strip() or in_traceback or (
            line[0].isspace() and not STATUS_LINE.match(line)))
        if SECTION_HEADER.match(line) and not (in_section and line.startswith("-")):
            # a rule or header ends a traceback and a failure section (whose captured
            # output, under `----` rules, stays in it); a failure section opens at its header
            continues = False
            in_section = line.startswith(("_", "FAIL: ", "ERROR: "))
            in_traceback = False
        elif in_section and result and line.strip():
            continues = True
        if line.startswith(TRACEBACK) or line.lstrip().startswith(TRACEBACK):
            in_traceback = True
        elif in_traceback and line.strip() and not line[0].isspace():
            in_traceback = False  # the exception line ends the traceback, inside it
            continues = True
        if continues:
            last = result[-1]
            result[-1] = Entry(last.start, line_end, last.first_line_end)
        else:
            result.append(Entry(position, line_end, position + len(line)))
        position = line_end
    return result


def templates(first_lines: list[str]) -> list[int]:
    """A template id for each line, alike lines sharing one (see the module docstring)."""
    from drain3.drain import Drain  # its import is not free: only logs pay it

    miner = Drain(depth=4, sim_th=0.4, max_children=100)
    ids = [miner.add_log_message(line.strip() or "<blank>")[0].cluster_id for line in first_lines]
    return ids


def severity(entry_text: str) -> float:
    if ERROR_WORDS.search(entry_text):
        return 1.0
    return WARNING_SEVERITY if WARNING_WORDS.search(entry_text) else 0.0


@dataclass(frozen=True)
class LogStructure:
    """A log part's entries, each entry's template id and how many entries share it."""

    entries: tuple[Entry, ...]
    template_ids: tuple[int, ...]

    @cached_property
    def starts(self) -> list[int]:
        return [entry.start for entry in self.entries]

    @classmethod
    def of(cls, text: str, start: int, end: int) -> "LogStructure":
        found = entries(text, start, end)
        return cls(tuple(found), tuple(templates([text[e.start:e.first_line_end] for e in found])))
