"""Code review on repository dumps: are the call sites a diff breaks kept?

Each case is a real commit of a real public repository (bench/data/code/SOURCES.md)
that changes the parameters of a function or method (adds, removes or renames one)
or renames the function, while that function has between 2 and 30 call sites in the
dumped tree at the commit's parent. The prompt is what a reviewer pastes:

1. the commit's unified diff of the file that defines the function
   (`git diff <parent> <sha> -- <file>`): the definition change itself; the rest of
   the commit, which often updates the callers, is left out, or the answer would sit
   in the always-kept head of the prompt;
2. a dump of the tree at the parent, written by a real tool (repomix xml, markdown
   or plain; files-to-prompt plain, --cxml or --markdown; gitingest), the format
   varying across cases: the defining file and every file with a call site, then the
   README and other source and test files at random up to about 52k o200k tokens;
3. a question in plain words ("Which callers does this diff break?", ...), drawn
   with the seed among `QUESTIONS`; it never lists the call sites.

Definitions and call sites were found by parsing, not by grep: Python's `ast` for
Python (a call is `name(...)` or `x.name(...)`), tree-sitter (tree-sitter-go,
tree-sitter-rust, tree-sitter-typescript) for Go, Rust and TypeScript
(`call_expression` whose callee is the name, a selector/field/member ending in it,
or a path ending in it). A case was kept only when the name is defined exactly once
in the dumped language's files, is not a dunder, a test or a common method name
(`get`, `copy`, `format`, ...; Python: no attribute of the builtin types), so that
`x.name(...)` is this function. A call site is the line holding the callee's name.

`checks`: every call-site line in full (indentation included, as in the dump), then
every file header line of the dump as its writer wrote it (`<file path="x.py">`,
`## File: x.py`, `File: x.py`, `x.py`, `<source>x.py</source>`, `FILE: x.py`). The data
file also keeps `site_headers` (the headers of the defining and calling files only).

The cases are stored, built, in bench/data/code/review.json.xz (one JSON list, xz),
so that no repository is needed at benchmark time; bench/data/code/prepare/ holds the
scripts that built them. dev and test are split by repository (`SPLITS`).

    python -m bench.tasks review --split dev --rates 0.2,0.3
"""

import json
import lzma
import random
from functools import lru_cache
from pathlib import Path

from .tasks import TaskCase

DATA = Path(__file__).resolve().parent / "data" / "code" / "review.json.xz"
SPLITS = {
    "dev": ("jd/tenacity", "hynek/structlog", "pallets/itsdangerous", "spf13/cobra"),
    "test": ("pallets/click", "psf/requests", "encode/httpx", "sindresorhus/ky", "dtolnay/anyhow"),
}
QUESTIONS = (
    "Review this change: which call sites must be updated?",
    "Which callers does this diff break?",
    "I am reviewing the diff above. Where in the code base is the changed function called, "
    "and which of those calls need to change?",
    "Before merging this, list every place that calls the function whose signature changed.",
    "What else in the repository has to be edited for this change to be complete? "
    "Quote the affected calls.",
    "Code review: find all the calls that this change affects, with their files.",
    "Does this patch leave any caller behind? Show each call of the changed function.",
    "Which lines elsewhere in the project call the function this commit changes?",
    "Is this change safe for the rest of the code? Point me to every call site it touches.",
)


@lru_cache(maxsize=1)
def load() -> tuple[dict, ...]:
    with lzma.open(DATA, "rt", encoding="utf-8") as handle:
        return tuple(json.load(handle))


def case_text(row: dict, question: str) -> str:
    return f"{row['diff'].rstrip()}\n\n{row['dump'].rstrip()}\n\n{question}\n"


def case_checks(row: dict) -> tuple[str, ...]:
    return tuple(dict.fromkeys([line for _, _, line in row["call_sites"]] + row["headers"]))


def cases(split: str, seed: int = 0) -> list[TaskCase]:
    """Every case of the split, in a fixed order; the seed draws each question's wording."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, not {split!r}")
    rng = random.Random(seed)
    out = []
    for row in load():
        if row["repo"] not in SPLITS[split]:
            continue
        question = rng.choice(QUESTIONS)
        out.append(TaskCase(
            name=f"{row['repo']}@{row['sha'][:10]}:{row['qual']}",
            source=f"github:{row['repo']}",
            text=case_text(row, question),
            checks=case_checks(row),
            profile="code",
        ))
    return out
