"""Side by side, in one run: crossprefill, LLMLingua, truncation, lexical and random chunks.

Run it through the benchmarks' entry point, `python -m bench all|needle|code [--quick]`.

Cases. Needle cases come from `bench.needle.make_case` (a fact sentence in held-out
prose, with a question about it) and code cases from `bench.code.make_case` (a Python
repository dump with one flipped comparison, and a question naming four functions),
with the same seeds as those benchmarks, so their first N cases are these cases. Every
method gets every case at every keep rate with the same budget: floor(rate x target
tokens of the input), counted with the benchmarks' target (`bench.targets`).

Methods. crossprefill (each draft named), then, with the first draft: random chunks
(`bench.methods`) and lexical overlap with the query (the pipeline's BM25 `lexical`
scorer), both through the same pipeline, so only the choice of chunks differs, head
and head+tail truncation (`bench.truncation`, with the target's tokens), and LLMLingua
v1's PromptCompressor with the same draft, plain and question-aware (LongLLMLingua)
(`bench.llmlingua_runner`, in its own environment made by `setup_llmlingua.sh`).

Time. Every method runs as its own process (`bench.worker`, or LLMLingua's runner) that
reads all items as JSON, loads what it needs once, and times its work on each item with
perf_counter; this process times the whole child from outside. Startup (interpreter, imports, model and tokenizer loading)
is the child's wall time minus the sum of its per-item work, and a method's time per
input is startup + mean work: what one run of the tool on one input costs. The score
cache is not used, so crossprefill scores every input at every rate afresh.

Measures, computed here the same way for every method's output:
- evidence: the whole needle sentence; the broken line (indentation included), the
  `def` lines of the four functions named in the question, every file header;
- target tokens achieved / requested (mean and worst over all items);
- verbatim: every stretch of output between the method's delimiters is a substring of
  the input; and the share of output words (runs of letters, digits, `_`) that are no
  word of the input at all (tokens dropped inside words make such words).
"""

import argparse
import datetime
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from crossprefill_cli.models.draft import load_draft
from crossprefill_cli.models.loading import draft_location
from crossprefill_cli.pipeline.profiles import load_profile

from . import code, needle, truncation
from .targets import FIXTURE, bench_target

HERE = Path(__file__).resolve().parent
LLMLINGUA_PYTHON = HERE / ".venv-llmlingua" / "bin" / "python"
# LLMLingua counts its own statistics in gpt-3.5-turbo's encoding, cl100k_base: offline,
# tiktoken finds it in its cache folder under the sha1 of its download URL.
CL100K = (FIXTURE.with_name("cl100k_base.tiktoken"), "9b5ad71b2ce5302211f9c61530b329a4922fc6a4")
WORD = re.compile(r"\w+")

QUICK = dict(lengths=[4000], cases=8, rates=[0.125, 0.25], code_tokens=6000, code_cases=4,
             code_rates=[0.3])
FULL = dict(lengths=[4000, 16000], cases=20, rates=[0.125, 0.25], code_tokens=6000,
            code_cases=12, code_rates=[0.2, 0.3])


@dataclass
class Item:
    """One compression asked of every method, and what its output must keep."""

    name: str                         # e.g. "code case 3 @ 0.3", for failure reports
    case: int
    text: str
    query: str
    profile: str
    budget: int                       # target tokens
    tokens_in: int
    evidence: dict[str, list[str]]    # table column -> strings that must all be in the output


@dataclass
class Method:
    name: str
    command: list[str]                # the child process; ITEMS and OUT paths are appended
    delimiters: dict[str, list[str]]  # profile -> markers it puts between kept stretches


@dataclass
class Outcome:
    item: Item
    text: str | None                  # None when the method failed on the item
    seconds: float
    error: str | None


# ---------------------------------------------------------------- the child processes

def run_method(method: Method, items: list[Item], env: dict) -> tuple[list[Outcome], float]:
    """Each item's outcome, and the child's startup seconds (wall minus per-item work)."""
    with tempfile.TemporaryDirectory(prefix="crossprefill-compare-") as folder:
        items_path, out_path = Path(folder) / "items.json", Path(folder) / "out.json"
        items_path.write_text(json.dumps([asdict(i) for i in items]), encoding="utf-8")
        started = time.perf_counter()
        child = subprocess.run([*method.command, str(items_path), str(out_path)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - started
        if child.returncode != 0:
            raise SystemExit(f"{method.name} failed (exit {child.returncode}):\n"
                             + child.stderr[-3000:])
        outputs = json.loads(out_path.read_text(encoding="utf-8"))
    outcomes = [Outcome(item, out.get("text"), out["seconds"], out.get("error"))
                for item, out in zip(items, outputs)]
    return outcomes, wall - sum(o.seconds for o in outcomes)


# ---------------------------------------------------------------------------- cases

def build_items(args, count) -> list[Item]:
    items = []
    if "needle" in args.benchmarks:
        for length in args.lengths:
            rng = random.Random(f"needle-{length}")  # the seed bench.needle uses
            for index in range(args.cases):
                case = needle.make_case(rng, length, count)
                tokens = count(case.text)
                where = f"needle {length // 1000}k" if len(args.lengths) > 1 else "needle"
                items += [Item(f"{where} case {index + 1} @ {rate:g}", index, case.text,
                               case.query, "text", int(rate * tokens), tokens,
                               {f"{where} @ {rate:g}": [case.needle]})
                          for rate in args.rates]
    if "code" in args.benchmarks:
        rng = random.Random(f"code-{args.code_tokens}")  # the seed bench.code uses
        for index in range(args.code_cases):
            case = code.make_case(rng, args.code_tokens, count)
            tokens = count(case.text)
            items += [Item(f"code case {index + 1} @ {rate:g}", index, case.text, case.query,
                           "code", int(rate * tokens), tokens,
                           {f"broken line @ {rate:g}": [case.broken_line],
                            f"signatures @ {rate:g}": case.signatures,
                            f"headers @ {rate:g}": case.headers})
                      for rate in args.code_rates]
    return items


def competitors(args, target_spec: str) -> list[Method]:
    ours = [sys.executable, "-m", "bench.worker"]
    pipeline = {name: sorted({p.delimiter, p.prose_gap_delimiter,
                              *(d for _, d in p.language_delimiters)})
                for name in ("text", "code") for p in [load_profile(name)]}
    marker = {name: [truncation.DELIMITER.strip()] for name in pipeline}
    reference = args.drafts[0]
    found = [Method(f"crossprefill ({d})", [*ours, "crossprefill", d, target_spec], pipeline)
             for d in args.drafts]
    found += [Method("random chunks", [*ours, "random", reference, target_spec], pipeline),
              Method("lexical (BM25)", [*ours, "lexical", reference, target_spec], pipeline),
              Method("head truncation", [*ours, "head", reference, target_spec], {}),
              Method("head+tail truncation", [*ours, "head+tail", reference, target_spec], marker)]
    if args.llmlingua:
        found += [Method(f"{label} ({reference})", [str(LLMLINGUA_PYTHON), "-m",
                                                    "bench.llmlingua_runner", mode,
                                                    draft_location(reference)], {})
                  for label, mode in (("LLMLingua", "llmlingua"),
                                      ("LongLLMLingua", "longllmlingua"))]
    return found


def ensure_llmlingua() -> None:
    if not LLMLINGUA_PYTHON.exists():
        print("setting up LLMLingua's environment (once): sh bench/setup_llmlingua.sh", flush=True)
        subprocess.run(["sh", str(HERE / "setup_llmlingua.sh"), sys.executable], check=True)


def offline_cl100k() -> None:
    """Put the fixture cl100k_base where tiktoken looks, for LLMLingua's own counts."""
    folder, (fixture, name) = os.environ.get("TIKTOKEN_CACHE_DIR"), CL100K
    if folder and fixture.exists() and not (Path(folder) / name).exists():
        shutil.copy(fixture, Path(folder) / name)


# -------------------------------------------------------------------------- measures

COUNTED_GAP = r"\[\.\.\. \d+ [a-z ]+ \.\.\.\]"


def pieces(text: str, delimiters: list[str]) -> list[str]:
    """The stretches of output between delimiters (and the pipeline's counted gaps,
    `[... 12 lines ...]`), without surrounding whitespace."""
    if delimiters:
        pattern = "|".join([COUNTED_GAP, *(re.escape(d) for d in sorted(delimiters, key=len,
                                                                         reverse=True))])
        parts = re.split(pattern, text)
    else:
        parts = [text]
    return [part.strip() for part in parts if part.strip()]


@dataclass
class Row:
    name: str
    cells: dict[str, str]
    failures: list[str]
    over_budget: int                  # outputs with more target tokens than their budget


def summarise(method: Method, outcomes: list[Outcome], startup: float, count,
              columns: list[str]) -> Row:
    hits = {column: [0, 0] for column in columns}
    ratios, verbatim, words, strange = [], 0, 0, 0
    failures = [f"{o.item.name}: {o.error}" for o in outcomes if o.error]
    for outcome in outcomes:
        item, text = outcome.item, outcome.text or ""
        for column, strings in item.evidence.items():
            hits[column][0] += all(s in text for s in strings)
            hits[column][1] += 1
        if outcome.text is None:
            continue
        ratios.append(count(text) / item.budget)
        stretches = pieces(text, method.delimiters.get(item.profile, []))
        verbatim += all(s in item.text for s in stretches)
        known = set(WORD.findall(item.text))
        found = [w for s in stretches for w in WORD.findall(s)]
        words, strange = words + len(found), strange + sum(w not in known for w in found)
    done = len(ratios)
    work = sum(o.seconds for o in outcomes) / len(outcomes)
    cells = {column: f"{100 * kept / total:.0f}%" for column, (kept, total) in hits.items()}
    cells["target tokens / budget"] = (f"{sum(ratios) / done:.2f} (max {max(ratios):.2f})"
                                       if done else "—")
    cells["verbatim"] = f"{100 * verbatim / done:.0f}%" if done else "—"
    cells["words not in input"] = f"{100 * strange / max(1, words):.1f}%" if done else "—"
    cells["time per input"] = f"{startup + work:.1f} s ({startup:.1f} + {work:.1f})"
    return Row(method.name, cells, failures, sum(ratio > 1 for ratio in ratios))


def evidence_columns(items: list[Item]) -> list[str]:
    return list(dict.fromkeys(column for item in items for column in item.evidence))


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor() or platform.machine())
    return f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"


def print_table(rows: list[Row], columns: list[str]) -> None:
    header = [*columns, "target tokens / budget", "verbatim", "words not in input",
              "time per input"]
    print("| method | " + " | ".join(header) + " |")
    print("|---|" + "---:|" * len(header))
    for row in rows:
        print(f"| {row.name} | " + " | ".join(row.cells[c] for c in header) + " |")


# ------------------------------------------------------------------------------ main

BENCHMARKS = {"all": ["needle", "code"], "needle": ["needle"], "code": ["code"]}


def parse(command: str, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m bench {command}",
                                     description=__doc__.splitlines()[0])
    numbers = lambda kind: lambda s: [kind(x) for x in s.split(",")]  # noqa: E731
    parser.add_argument("--quick", action="store_true",
                        help="few cases (about ten minutes on 2 CPU cores)")
    parser.add_argument("--drafts", type=lambda s: s.split(","), default=["builtin"],
                        help="crossprefill drafts, comma-separated; the first one also drives "
                             "LLMLingua and the baselines' chunking (default: builtin)")
    parser.add_argument("--lengths", type=numbers(int), help="needle haystack sizes, target tokens")
    parser.add_argument("--cases", type=int, help="needle cases per length")
    parser.add_argument("--rates", type=numbers(float), help="needle keep rates")
    parser.add_argument("--code-tokens", type=int, help="code dump size, target tokens")
    parser.add_argument("--code-cases", type=int, help="code cases")
    parser.add_argument("--code-rates", type=numbers(float), help="code keep rates")
    parser.add_argument("--no-llmlingua", dest="llmlingua", action="store_false",
                        help="leave LLMLingua out (no separate environment needed)")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.benchmarks = BENCHMARKS[command]
    return args


def run(command: str, argv: list[str]) -> None:
    """`python -m bench COMMAND ARGV...` for COMMAND in all, needle, code."""
    args = parse(command, argv)
    started, load = time.perf_counter(), os.getloadavg()[0]
    target = bench_target(load_draft(args.drafts[0], device="cpu"))
    target_spec = "o200k_base" if target.name == "o200k_base" else draft_location(args.drafts[0])
    if args.llmlingua:
        ensure_llmlingua()
        offline_cl100k()
    items = build_items(args, target.count)
    columns = evidence_columns(items)
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    rows = []
    for method in competitors(args, target_spec):
        print(f"  {method.name}: {len(items)} compressions ...", flush=True)
        outcomes, startup = run_method(method, items, env)
        rows.append(summarise(method, outcomes, startup, target.count, columns))
    print(f"\n{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {machine()}, "
          f"torch threads {torch.get_num_threads()}, load average {load:.1f} at the start and "
          f"{os.getloadavg()[0]:.1f} at the end; target {target.name}; "
          f"command: python -m bench {' '.join([command, *argv])}\n")
    print_table(rows, columns)
    if "needle" in args.benchmarks:
        print(f"\nneedle: {args.cases} cases per haystack size "
              f"({', '.join(str(n) for n in args.lengths)} target tokens)")
    if "code" in args.benchmarks:
        print(f"code: {args.code_cases} dumps of ~{args.code_tokens} target tokens")
    for row in rows:
        if row.over_budget:
            print(f"over budget: {row.name}, {row.over_budget} of {len(items)} outputs")
        for failure in row.failures:
            print(f"failed: {row.name}, {failure}")
    print(f"whole run: {time.perf_counter() - started:.0f} s")

