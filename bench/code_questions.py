"""Code questions in plain words: is the function the question describes kept?

A case is a dump of a real public repository at its newest stored commit
(bench/data/code/SOURCES.md), written by a real tool (repomix xml, markdown or plain;
files-to-prompt plain, --cxml or --markdown; gitingest; one format per repository),
followed by a question about how one function works, written by hand in plain words:
it paraphrases what the function does and never writes its identifier (checked:
not the name in any case, not with underscores turned to spaces, not its camelCase
words run together with spaces). The prompt is the dump, a blank line, the question.

The functions were drawn with a seeded RNG (`random.Random("questions:<repo>")`)
among the dumped non-test source files' functions and methods with a meaningful body:
5 to 60 lines, at least 4 code lines besides the docstring, not nested, not an
overload, not a dunder or test, a name of 5 or more characters, their text once in
the dump. A few drawn functions got no question (a name that is also an HTTP verb,
`request` in requests, a body that is only a docstring), as stated in SOURCES.md.

`checks`: the function's definition text exactly as in the dump, from its signature
line (decorators excluded) through the last line of its body, indentation included.

The dumps are in bench/data/code/questions_dumps.json.xz; the questions, with repo,
commit, path, function, lines and the question, in bench/data/code/questions.json.
dev and test are split by repository (`SPLITS`), the same split as `bench.review`.

    python -m bench.tasks code --split dev --rates 0.2,0.3
"""

import json
import lzma
from functools import lru_cache
from pathlib import Path

from .tasks import TaskCase

DATA = Path(__file__).resolve().parent / "data" / "code"
SPLITS = {
    "dev": ("jd/tenacity", "hynek/structlog", "pallets/itsdangerous", "spf13/cobra"),
    "test": ("pallets/click", "psf/requests", "encode/httpx", "sindresorhus/ky", "dtolnay/anyhow"),
}


@lru_cache(maxsize=1)
def load() -> tuple[dict, list[dict]]:
    with lzma.open(DATA / "questions_dumps.json.xz", "rt", encoding="utf-8") as handle:
        dumps = json.load(handle)
    questions = json.loads((DATA / "questions.json").read_text(encoding="utf-8"))
    return dumps, questions


def cases(split: str, seed: int = 0) -> list[TaskCase]:
    """Every question of the split, in a fixed order (the seed changes nothing: the
    questions are written, the dumps built; it is taken for the common interface)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, not {split!r}")
    dumps, questions = load()
    out = []
    for q in questions:
        if q["repo"] not in SPLITS[split]:
            continue
        dump = dumps[q["repo"]]
        out.append(TaskCase(
            name=f"{q['repo']}@{q['commit'][:10]}:{q['path']}:{q['function']}",
            source=f"github:{q['repo']}",
            text=f"{dump['dump'].rstrip()}\n\n{q['question']}\n",
            checks=(q["definition"],),
            profile="code",
        ))
    return out
