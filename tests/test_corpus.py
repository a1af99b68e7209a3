"""The same bytes from every way in, before and after a restructuring (issue 25).

tests/data/corpus/ holds a corpus of real inputs (this repository's docs, changelog and
source; dumps written by repomix in each style, files-to-prompt plain, --cxml and
--markdown, gitingest and code2prompt; chat transcripts in seven template layouts;
OpenAI-style messages JSON; logs, JSON, JSONL batch records and diffs; CRLF and
non-ASCII inputs), each with its options in cases.json, and the output the code gave
when the corpus was recorded in expected/. Every case must come out exactly as recorded
through each front end:

- the library: `crossprefill_cli.compress`, or `pipeline.compress_messages` for
  `--format messages` cases (the same JSON, compared key order and all);
- the command line, in-process: `crossprefill compress` prints exactly the recorded
  bytes, nothing on stderr, and `--json` reports the recorded token counts;
- `batch`: `compress_many` with `BatchSettings`, and the `crossprefill batch` command on
  a JSONL file of the cases (one run per scorer, the batch's option);
- `--server`: one `crossprefill serve` for the whole module, and the command line sent
  to it with `--server URL`.

A failure here after a refactor means the refactor changed behaviour. Re-recording
(`python tests/data/corpus/record.py`, see its docstring) is for deliberate behaviour
changes only. Everything runs the bundled draft in float32 on the CPU (its default
engine, numpy, which gives the outputs recorded on transformers), counts target tokens with the bundled draft's own tokenizer folder (always
there, offline), and keeps scores in a private cache that starts empty: the library,
which uses no cache, and the first command-line run each score every case, and batch
and the server read those scores back from the cache, as a re-run would. The module
runs on one CPU core (`corpus_cases.one_core`: the command line then builds its target
here rather than in a child process, which would cost 3-4 s per in-process call).
"""

import json

import corpus_cases
import pytest
from corpus_cases import DEVICE, DRAFT, DTYPE, TARGET
from servers import server
from typer.testing import CliRunner

CASES = corpus_cases.load_cases()
COUNTS = json.loads(corpus_cases.COUNTS.read_text()) if corpus_cases.COUNTS.exists() else {}
SCORERS = corpus_cases.scorers(CASES)
runner = CliRunner()

# what the corpus must cover, at least (kind -> cases)
LEAST = {"text": 12, "code": 6, "dump": 12, "chat": 6, "messages": 5, "log": 3, "json": 3,
         "diff": 3}
# every layout of every packer (see docs/dumps.md), each written by the packer itself
LAYOUTS = {"repomix-xml", "repomix-markdown", "repomix-plain", "files-to-prompt",
           "files-to-prompt-cxml", "files-to-prompt-markdown", "gitingest", "code2prompt"}


@pytest.fixture(scope="module", autouse=True)
def corpus_environment(tmp_path_factory):
    """A private, empty score cache, the deterministic settings, one CPU core."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CROSSPREFILL_CACHE_DIR", str(tmp_path_factory.mktemp("corpus-scores")))
        for name, value in corpus_cases.deterministic_environment().items():
            patch.setenv(name, value)
        with corpus_cases.one_core():
            yield


def expected_bytes(case) -> bytes:
    return case.expected_path.read_bytes()


def expected_messages(case) -> str:
    """The recorded messages, as canonical JSON (key order kept)."""
    return canonical(json.loads(expected_bytes(case)))


def canonical(data) -> str:
    return json.dumps(data, ensure_ascii=False)


def counts_of(report) -> dict:
    get = report.get if isinstance(report, dict) else lambda key: getattr(report, key)
    return {key: get(key) for key in ("tokens_before", "tokens_after", "budget")}


def test_the_corpus_is_varied_small_and_fully_recorded():
    names = [case.name for case in CASES]
    assert len(CASES) >= 50 and len(set(names)) == len(names)
    recorded = {path.name for path in corpus_cases.EXPECTED.glob("*.out")}
    assert recorded == {f"{name}.out" for name in names} and set(COUNTS) == set(names)
    kinds = {kind: sum(case.kind == kind for case in CASES) for kind in LEAST}
    assert all(kinds[kind] >= least for kind, least in LEAST.items()), kinds
    assert sum(case.format == "messages" for case in CASES) >= 5
    assert {case.profile for case in CASES} == {"text", "code"}
    assert set(SCORERS) == {"evidence", "lexical", "attention"}
    assert sum(case.scorer == "evidence" for case in CASES) > len(CASES) / 2
    assert sum(case.query is None for case in CASES) >= 10  # the question found, or none
    assert sum(case.target_tokens is not None for case in CASES) >= 5
    assert sum(b"\r\n" in case.path.read_bytes() for case in CASES) >= 4
    assert sum(not case.text.isascii() for case in CASES) >= 4
    assert {case.layout for case in CASES if case.kind == "dump"} == LAYOUTS
    assert all(250 <= COUNTS[case.name]["tokens_before"] <= 4000 for case in CASES)
    assert sum(case.path.stat().st_size for case in CASES) < 500_000


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_library(case):
    from crossprefill_cli import compress
    from crossprefill_cli.pipeline.job import compress_messages

    if case.format == "messages":
        messages, result = compress_messages(case.text, **case.library_options())
        assert canonical(messages) == expected_messages(case)
    else:
        result = compress(case.text, **case.library_options())
        assert result.text.encode("utf-8") == expected_bytes(case)
    assert counts_of(result) == COUNTS[case.name]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_command_line(case):
    from crossprefill_cli.apps.cli.commands import app

    printed = runner.invoke(app, case.cli_args())
    assert printed.exit_code == 0, printed.stderr
    assert printed.stdout_bytes == expected_bytes(case)
    assert printed.stderr == ""
    report = runner.invoke(app, [*case.cli_args(), "--json"])
    assert report.exit_code == 0, report.stderr
    assert counts_of(json.loads(report.stdout)) == COUNTS[case.name]


def batch_mismatches(cases, outputs) -> list[str]:
    """The names of the cases whose batch output record differs from the record."""
    wrong = []
    for case, output in zip(cases, outputs, strict=True):
        if output.get("id") != case.name or "error" in output:
            wrong.append(f"{case.name}: {output.get('error')}")
        elif case.format == "messages":
            if canonical(output["messages"]) != expected_messages(case):
                wrong.append(case.name)
        elif output["text"].encode("utf-8") != expected_bytes(case):
            wrong.append(case.name)
        elif counts_of(output) != COUNTS[case.name]:
            wrong.append(f"{case.name}: counts {counts_of(output)}")
    return wrong


@pytest.mark.parametrize("scorer", SCORERS)
def test_batch_library(scorer):
    from crossprefill_cli import BatchSettings, compress_many

    cases = [case for case in CASES if case.scorer == scorer]
    settings = BatchSettings(draft=DRAFT, target=TARGET, scorer=scorer, device=DEVICE,
                             dtype=DTYPE)
    outputs = list(compress_many([case.record() for case in cases], settings))
    assert batch_mismatches(cases, outputs) == []


@pytest.mark.parametrize("scorer", SCORERS)
def test_batch_command(scorer, tmp_path):
    from crossprefill_cli.apps.cli.commands import app

    cases = [case for case in CASES if case.scorer == scorer]
    records, output = tmp_path / "cases.jsonl", tmp_path / "out.jsonl"
    records.write_text("".join(json.dumps(case.record(), ensure_ascii=False) + "\n"
                               for case in cases), encoding="utf-8")
    done = runner.invoke(app, ["batch", str(records), "-o", str(output), "-d", DRAFT,
                               "-t", TARGET, "--scorer", scorer, "--device", DEVICE,
                               "--dtype", DTYPE, "--quiet"])
    assert done.exit_code == 0, done.stderr
    outputs = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert batch_mismatches(cases, outputs) == []


@pytest.fixture(scope="module")
def served():
    """One `crossprefill serve` for every server case (it inherits the private cache)."""
    with server(*corpus_cases.serve_args()) as (url, _):
        yield url


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_server(case, served):
    from crossprefill_cli.apps.cli.commands import app

    printed = runner.invoke(app, case.cli_args(server=served))
    assert printed.exit_code == 0, printed.stderr
    assert printed.stdout_bytes == expected_bytes(case)
    assert printed.stderr == ""
    report = runner.invoke(app, [*case.cli_args(server=served), "--json"])
    assert report.exit_code == 0, report.stderr
    assert counts_of(json.loads(report.stdout)) == COUNTS[case.name]
