"""Do the two engines keep the same text? The numpy engine against transformers, in float32.

    python -m bench.engines_agree [--long 30]

Inputs: every case of the output corpus (tests/data/corpus: prose, code, every dump
layout, chats in seven templates, messages JSON, logs, JSON, diffs, CRLF and non-ASCII
text, each with its own options), and `--long` long inputs read over many windows:
Debian-handbook prose of 4k-64k target tokens (each from its own place in the handbook,
each with its own question) and this package's own source as one dump for code
questions. Each input is compressed by `crossprefill compress --json` in this process,
once with `--backend numpy` and once with `--backend torch --dtype float32`, both on the
CPU, without the score cache, and the outputs are compared byte for byte.

Where they differ, the chunks one kept and the other dropped are listed with their
scores on both engines and the score of the last chunk that made the cut: a difference
is a tie within float32 rounding when those scores are within `TIE` of each other.
Prints one line per differing input and the count.
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from typer.testing import CliRunner

from crossprefill_cli.apps.cli.commands import app

from .corpora import handbook_paragraphs

TESTS = Path(__file__).resolve().parents[1] / "tests"
PACKAGE = Path(__file__).resolve().parents[1] / "crossprefill_cli"
# relative score difference below which two chunks are tied in float32
TIE = 1e-4
QUESTIONS = ("How does the package manager verify what it installs?",
             "Which file configures the network interfaces?",
             "What does the administrator do before upgrading to a new release?",
             "How are user accounts and groups created?",
             "Which service schedules recurring jobs?",
             "How is the firewall configured?")
CODE_QUESTIONS = ("What does decode_input refuse?", "How does the score cache prune old entries?",
                  "Where is the keep rate checked?", "How are gap markers written?")


def corpus_inputs() -> list[tuple[str, Path, list[str]]]:
    sys.path.insert(0, str(TESTS))
    import corpus_cases

    return [(case.name, case.path, without_machine(case.cli_args()[2:]))
            for case in corpus_cases.load_cases()]


def without_machine(args: list[str]) -> list[str]:
    """A case's options less its --device and --dtype (each engine run sets its own)."""
    kept, skip = [], False
    for arg in args:
        if not skip and arg in ("--device", "--dtype"):
            skip = True
            continue
        if not skip:
            kept.append(arg)
        skip = False
    return kept


def long_inputs(count: int, folder: Path) -> list[tuple[str, Path, list[str]]]:
    paragraphs = handbook_paragraphs()
    sizes = (4_000, 8_000, 16_000, 32_000, 64_000)
    made = []
    for n in range(count):
        if n % 6 == 5:  # this package's source as one dump, a code question
            path = folder / "package.txt"
            if not path.exists():
                path.write_text("".join(f"\n// {f}\n{f.read_text()}"
                                        for f in sorted(PACKAGE.rglob("*.py"))))
            made.append((f"package-source-{n}", path, [
                "-p", "code", "-n", "800", "-q", CODE_QUESTIONS[n % len(CODE_QUESTIONS)]]))
            continue
        size = sizes[n % len(sizes)]
        start = (n * 97) % len(paragraphs)
        chosen = (paragraphs[start:] + paragraphs[:start])[:size // 60]
        path = folder / f"handbook-{n}.txt"
        path.write_text("\n\n".join(chosen) + "\n")
        made.append((f"handbook-{size}-{n}", path, [
            "-r", ("0.125", "0.2", "0.3")[n % 3], "-q", QUESTIONS[n % len(QUESTIONS)]]))
    return made


def compressed(runner: CliRunner, path: Path, options: list[str], engine: list[str]) -> dict:
    done = runner.invoke(app, ["compress", str(path), *options, "--json", "--no-cache",
                               "--device", "cpu", *engine])
    if done.exit_code != 0:
        raise SystemExit(f"{path}: exit {done.exit_code}: {done.stderr}")
    return json.loads(done.stdout)


def explain(fast: dict, reference: dict) -> str:
    """The chunks kept by one engine only, their scores, and whether they are ties."""
    flips = [(a, b) for a, b in zip(fast["chunks"], reference["chunks"]) if a["kept"] != b["kept"]]
    lines = []
    for a, b in flips:
        relative = abs(a["score"] - b["score"]) / max(abs(b["score"]), 1e-12)
        lines.append(f"  chunk {a['start']}-{a['end']}: numpy {a['score']} "
                     f"({'kept' if a['kept'] else 'dropped'}), torch {b['score']} "
                     f"({'kept' if b['kept'] else 'dropped'}), relative difference "
                     f"{relative:.1e}{' (tie)' if relative < TIE else ''}")
    return "\n".join(lines) or "  same chunks kept; the texts differ elsewhere"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long", type=int, default=30, help="long multi-window inputs")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    runner = CliRunner()
    with tempfile.TemporaryDirectory() as folder:
        inputs = corpus_inputs() + long_inputs(args.long, Path(folder))
        differing = 0
        windows = []
        for name, path, options in inputs:
            fast = compressed(runner, path, options, ["--backend", "numpy"])
            reference = compressed(runner, path, options, ["--backend", "torch", "--dtype", "float32"])
            assert fast["backend"] == "numpy" and reference["backend"] == "torch"
            windows.append(fast["windows"])
            if fast["text"] != reference["text"]:
                differing += 1
                print(f"{name}: outputs differ\n{explain(fast, reference)}", flush=True)
    print(f"{len(inputs)} inputs ({sum(w > 1 for w in windows)} over several windows, up to "
          f"{max(windows)}), {differing} with a different output, "
          f"{len(inputs) - differing} identical")


if __name__ == "__main__":
    main()
