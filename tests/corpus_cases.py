"""The output corpus (tests/data/corpus/): its cases and how each front end is asked for
them, shared by `test_corpus.py` (which checks) and `data/corpus/record.py` (which
records), so that both ask every front end exactly the same question.

A case names an input file (relative to tests/data/corpus/), what it is (`kind`, and
for a dump the packer's `layout`), where it came from (`source`) and its options: `profile`, `format` (text or messages),
`scorer`, `query` (null: the question found in the text steers, if any), and one of
`keep_rate` or `target_tokens`. Every case runs the bundled draft in float32 on the CPU
and counts target tokens with the bundled draft's own tokenizer folder, a target that
is always present, offline, and never changes under the check.

Expected outputs live in tests/data/corpus/expected/: `<name>.out` holds exactly the
bytes `crossprefill compress` prints on stdout (the compressed text, or for
`--format messages` the messages' JSON in the input's style), and `counts.json` holds
each case's `tokens_before`, `tokens_after` and `budget`.

Only public entry points are used (`crossprefill_cli.compress`,
`crossprefill_cli.pipeline.job.compress_messages`, `crossprefill_cli.compress_many` with
`BatchSettings`, the Typer app `crossprefill_cli.apps.cli.commands.app` and `crossprefill serve`), so
the check holds across a restructuring of the modules behind them.
"""

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import crossprefill_cli

CORPUS = Path(__file__).resolve().parent / "data" / "corpus"
EXPECTED = CORPUS / "expected"
COUNTS = EXPECTED / "counts.json"
# The target: the bundled draft's tokenizer folder, read as a Hugging Face tokenizer.
# If a restructuring moves the bundled draft, only this path changes (it is never
# printed in the compressed text).
TARGET = str(Path(crossprefill_cli.__file__).resolve().parent / "drafts" / "builtin")
DRAFT = "builtin"
DEVICE, DTYPE = "cpu", "float32"


@dataclass(frozen=True)
class Case:
    name: str
    input: str
    kind: str
    source: str
    layout: str | None = None  # a dump's packer and style
    profile: str = "text"
    format: str = "text"
    scorer: str = "evidence"
    query: str | None = None
    keep_rate: float | None = None
    target_tokens: int | None = None

    @property
    def path(self) -> Path:
        return (CORPUS / self.input).resolve()

    @property
    def text(self) -> str:
        # bytes, then UTF-8: no newline translation, so CRLF inputs stay CRLF
        return self.path.read_bytes().decode("utf-8")

    @property
    def expected_path(self) -> Path:
        return EXPECTED / f"{self.name}.out"

    def budget(self) -> dict:
        if self.target_tokens is not None:
            return {"target_tokens": self.target_tokens}
        return {"keep_rate": self.keep_rate}

    def cli_args(self, *, server: str | None = None) -> list[str]:
        """`crossprefill compress` for this case, locally or through `server`."""
        args = ["compress", str(self.path), "-p", self.profile, "-d", DRAFT, "-t", TARGET,
                "--scorer", self.scorer, "--format", self.format]
        if server is None:
            args += ["--device", DEVICE, "--dtype", DTYPE]
        else:  # the server chose them (see `serve_args`)
            args += ["--server", server]
        if self.target_tokens is not None:
            args += ["-n", str(self.target_tokens)]
        else:
            args += ["-r", repr(self.keep_rate)]
        if self.query is not None:
            args += ["-q", self.query]
        return args

    def library_options(self) -> dict:
        return dict(profile=self.profile, draft=DRAFT, target=TARGET, scorer=self.scorer,
                    device=DEVICE, dtype=DTYPE, query=self.query, **self.budget())

    def record(self) -> dict:
        """This case as a `crossprefill batch` record (the scorer is the batch's)."""
        record = {"id": self.name}
        if self.format == "messages":
            record["messages"] = json.loads(self.text)
        else:
            record["text"] = self.text
        record["profile"] = self.profile
        record.update(self.budget())
        if self.query is not None:
            record["query"] = self.query
        return record


def serve_args() -> list[str]:
    """The options of the one `crossprefill serve` every server case goes to."""
    return ["-d", DRAFT, "-t", TARGET, "--device", DEVICE, "--dtype", DTYPE]


def load_cases() -> list[Case]:
    return [Case(**case) for case in json.loads((CORPUS / "cases.json").read_text())["cases"]]


def scorers(cases: list[Case]) -> list[str]:
    return sorted({case.scorer for case in cases})


def deterministic_environment() -> dict:
    """What the check and the recording both run under: one torch thread (the tests'
    conftest sets the same), the hub offline."""
    return {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def apply_environment() -> None:
    os.environ.update(deterministic_environment())


@contextmanager
def one_core():
    """Run this process on one CPU core. The command line then builds its target
    tokenizer in this process (`target_process`: with one core there is nothing to
    overlap) instead of a child process that imports transformers for 3-4 s on every
    in-process call; the output is the same either way, and the check stays fast."""
    if not hasattr(os, "sched_setaffinity"):  # not Linux: slower, same output
        yield
        return
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, cores)
