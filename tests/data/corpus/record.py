"""Record the corpus's expected outputs: `.venv/bin/python tests/data/corpus/record.py`.

For every case of cases.json this runs `crossprefill compress` in-process (the Typer app,
as tests/test_corpus.py does) and writes expected/<name>.out (exactly the bytes of stdout)
and expected/counts.json (tokens_before, tokens_after and budget of each case, from
`--json`). `python tests/data/corpus/record.py NAME ...` records only those cases (a case
just added); `--check` writes nothing and lists the cases whose output differs.

When re-recording is legitimate: a deliberate change of behaviour (a new selection rule,
another default, a fixed bug that changes what is kept), named in the commit and in
CHANGELOG.md, with the diff of expected/ read and explained; or a case added or changed
in cases.json. When it is not: a refactor, a move of modules, a renamed function, a
speed-up. Those promise byte-identical output, and the recorded files are the evidence:
if tests/test_corpus.py fails after such a change, the change is wrong, not the record.

The run is deterministic as the check is: the bundled draft in float32 on the CPU (on
its default engine, numpy: the outputs were first recorded on transformers, and the
numpy engine gives every one of them byte for byte), the hub offline, and a fresh private score cache (never the user's), so
every score is computed here and now. It takes well under a minute.
"""

import json
import os
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(TESTS))

import corpus_cases  # noqa: E402  (after the path above)

corpus_cases.apply_environment()


def recorded(case, runner, app) -> tuple[bytes, dict]:
    printed = runner.invoke(app, case.cli_args())
    if printed.exit_code != 0:
        raise SystemExit(f"{case.name}: exit {printed.exit_code}: {printed.stderr}")
    report = runner.invoke(app, [*case.cli_args(), "--json"])
    if report.exit_code != 0:
        raise SystemExit(f"{case.name}: exit {report.exit_code}: {report.stderr}")
    counts = json.loads(report.stdout)
    return printed.stdout_bytes, {key: counts[key]
                                  for key in ("tokens_before", "tokens_after", "budget")}


def main(argv: list[str]) -> int:
    check = "--check" in argv
    names = [name for name in argv if name != "--check"]
    cases = corpus_cases.load_cases()
    unknown = set(names) - {case.name for case in cases}
    if unknown:
        raise SystemExit(f"no such case: {', '.join(sorted(unknown))}")
    with tempfile.TemporaryDirectory(prefix="corpus-scores-") as cache:
        os.environ["CROSSPREFILL_CACHE_DIR"] = cache
        with corpus_cases.one_core():
            from typer.testing import CliRunner

            from crossprefill_cli.apps.cli.commands import app

            runner = CliRunner()
            counts = (json.loads(corpus_cases.COUNTS.read_text())
                      if corpus_cases.COUNTS.exists() else {})
            differ = []
            for case in cases:
                if names and case.name not in names:
                    continue
                output, case_counts = recorded(case, runner, app)
                old = case.expected_path.read_bytes() if case.expected_path.exists() else None
                if old != output or counts.get(case.name) != case_counts:
                    differ.append(case.name)
                if not check:
                    corpus_cases.EXPECTED.mkdir(exist_ok=True)
                    case.expected_path.write_bytes(output)
                    counts[case.name] = case_counts
                print(f"{case.name:36} {case_counts['tokens_before']:6} -> "
                      f"{case_counts['tokens_after']:5} (budget {case_counts['budget']})"
                      f"{'  CHANGED' if case.name in differ else ''}", file=sys.stderr)
    if not check:
        order = [case.name for case in cases if case.name in counts]
        corpus_cases.COUNTS.write_text(
            json.dumps({name: counts[name] for name in order}, indent=1) + "\n")
    print(f"{len(differ)} case(s) {'differ' if check else 'changed'}: "
          f"{', '.join(differ) or 'none'}", file=sys.stderr)
    return 1 if check and differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
