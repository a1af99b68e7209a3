"""CI logs with real test failures: does compression keep the failing test and its error?

Material (`bench/data/logs/<source>.jsonl.gz`, provenance in `bench/data/logs/SOURCES.md`):
each record is one real CI-like run of a public project's own test suite, captured by
running it, with ONE mutation injected into the library's source at a seeded random
site (a flipped comparison, a swapped boolean or `and`/`or`, an integer off by one)
so that 1 to 3 tests fail. A log is what a CI job prints, in order: the environment
set-up (`python -VV`, `pip install -v ...`, `pip list`; for the npm source `npm ci`
and `npm ls --all`), the test step (pytest with varied flags, `python -m unittest -v`,
or mocha through `npm run test-ci`), then a lint step (ruff, pyflakes or eslint) whose
output is unrelated to the failure. The failure sits wherever the run put it: deep
in the middle of the log, with installation noise before it and lint noise after it.

Ground truth comes from the test runner itself, never from reading the log by eye:
pytest's JUnit XML (the failing test case, its failure message's first line) mapped
to the node id on the log's `FAILED ...` summary line; for unittest, the
`FAIL: ...` blocks cross-checked against a JUnit run of the same mutation; for mocha,
its JSON reporter run on the same mutation. Every stored string was checked to occur
verbatim in its log when the data were made.

A case is the log followed by one question, drawn per case with a seeded RNG from a
pool of wordings that never names the failing test (as a user pipes a log: "why did
this fail?"). Dev and test use disjoint wordings, and are split by source (a project
never appears in both), so that weights tuned on dev are judged on unseen projects and
unseen phrasings. The `checks` are every failing test's name (the node id or dotted
id as the log prints it, or the mocha title) and its error line; each must survive
compression whole for the case to count.
"""

import gzip
import json
import random
from pathlib import Path

from .tasks import TaskCase

DATA = Path(__file__).resolve().parent / "data" / "logs"

# By source: no project is in both halves (see SOURCES.md).
SPLITS = {
    "dev": ("tenacity", "prettytable", "cachetools", "boltons"),
    "test": ("itsdangerous", "structlog", "humanize", "mime-types"),
}

QUESTIONS = {
    "dev": (
        "Why did this CI run fail?",
        "Which test is failing and what is the error?",
        "What went wrong in this build?",
        "Summarise the failure in the log above.",
        "The pipeline is red. What broke?",
        "Can you tell me which test failed here and why?",
        "What is the root cause of this failing job?",
        "Look at this CI output and explain the test failure.",
        "Which assertion failed in this run, and in which test?",
        "Give me a one-line summary of what failed.",
    ),
    "test": (
        "Why is this build failing?",
        "What failed in the job above, and what was the error message?",
        "My CI is broken - can you find the failing test in this log?",
        "Explain what caused this run to go red.",
        "Which tests did not pass, and what error did they raise?",
        "Please diagnose this CI failure.",
        "What's the problem with this test run?",
        "Read the log and tell me which check failed and why.",
        "Where does this pipeline break, and what does the error say?",
        "Triage this build log: what is failing?",
    ),
}


def records(source: str) -> list[dict]:
    """The stored runs of one source, in the order they were made."""
    with gzip.open(DATA / f"{source}.jsonl.gz", "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def checks(record: dict) -> tuple[str, ...]:
    """Each failing test's name and its error line, in log order, without repeats."""
    out: list[str] = []
    for failure in record["failures"]:
        for value in (failure["test"], failure["message"]):
            if value not in out:
                out.append(value)
    return tuple(out)


def cases(split: str, seed: int = 0) -> list[TaskCase]:
    """One case per stored run of the split's sources: the log, then a question."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, not {split!r}")
    wordings = QUESTIONS[split]
    built = []
    for source in SPLITS[split]:
        for number, record in enumerate(records(source)):
            rng = random.Random(f"logs:{seed}:{source}:{number}")
            log = record["log"].rstrip("\n")
            text = f"{log}\n\n{rng.choice(wordings)}\n"
            built.append(TaskCase(name=f"logs/{source}/{number}", source=source, text=text,
                                  checks=checks(record)))
    return built
