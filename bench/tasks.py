"""Task benchmarks: is what the task needs kept when the question's words do not name it?

One harness for the kinds of input whose evidence the task defines (logs, JSON tool
output, YAML files, code review, code questions in plain words). A kind's module
(`bench.logs`, `bench.json_records`, `bench.yaml_records`, `bench.review`,
`bench.code_questions`) builds `TaskCase`s from
real material stored under `bench/data/` (see each folder's SOURCES.md), split into dev
and test by source: weights are chosen on dev, numbers are reported on test.

Every case is a whole prompt with its question at the end (as a user pipes it: no
`--query`), compressed at each keep rate by every method with the same budget,
floor(rate x target tokens of the input):

- **default**: the pipeline as a user runs it (the profile's scorer);
- **attention**: the paper's scorer (the draft's lookahead attention alone);
- **lexical**: BM25 of the detected question's words alone;
- **random chunks**: the same units, chosen at random (`bench.methods`);
- **truncation**: the head of the input, as `ttok -t N` keeps it (`bench.truncation`).

A case counts when every one of its `checks` (strings the task needs: a failing test's
name and its error, a record's fields, a call site's line, a function's definition) is
in the output verbatim. One draft reading per case serves every scorer and rate (a
score cache).

    python -m bench.tasks logs --split dev --rates 0.125
    python -m bench.tasks review --split test --rates 0.2,0.3 --cases 12
"""

import argparse
import importlib
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass

from crossprefill_cli import compress
from crossprefill_cli.errors import UsageError
from crossprefill_cli.models.draft import load_draft

from .methods import bench_cache, random_scorer
from .options import provenance
from .targets import bench_target
from .truncation import head, token_starts

KINDS = {"logs": "bench.logs", "json": "bench.json_records", "yaml": "bench.yaml_records",
         "review": "bench.review", "code": "bench.code_questions"}
METHODS = ("default", "attention", "lexical", "random chunks", "truncation")


@dataclass(frozen=True)
class TaskCase:
    name: str
    source: str  # where the material came from: dev and test never share one
    text: str  # the whole prompt, question at the end
    checks: tuple[str, ...]  # what must survive verbatim
    profile: str = "text"


def output(method: str, case: TaskCase, rate: float, *, draft, target, seed: int) -> str:
    """What `method` keeps of the case at `rate`."""
    if method == "truncation":
        budget = int(rate * target.count(case.text))
        return head(case.text, budget, token_starts(target.name.split(" ")[0]))
    scorer = {"default": None, "random chunks": random_scorer(seed)}.get(method, method)
    return compress(case.text, keep_rate=rate, profile=case.profile, draft=draft, target=target,
                    scorer=scorer, cache=bench_cache()).text


def run(args) -> None:
    started = time.perf_counter()
    draft = load_draft(args.draft, device=args.device)
    target = bench_target(draft)
    cases = importlib.import_module(KINDS[args.kind]).cases(args.split, seed=args.seed)
    if args.cases:
        cases = random.Random(args.seed).sample(cases, min(args.cases, len(cases)))
    kept, misses, sources = Counter(), [], Counter(case.source for case in cases)
    tokens = sum(target.count(case.text) for case in cases) / max(len(cases), 1)
    for number, case in enumerate(cases, 1):
        for method in args.methods:
            for rate in args.rates:
                try:
                    text = output(method, case, rate, draft=draft, target=target, seed=number)
                except UsageError as error:
                    misses.append(f"{case.name} {method} @ {rate:g}: {error}")
                    continue
                lost = [check for check in case.checks if check not in text]
                kept[method, rate] += not lost
                if lost and method == "default":
                    misses.append(f"{case.name} @ {rate:g} lost {lost[0][:100]!r}")
        print(f"  case {number}/{len(cases)} done ({time.perf_counter() - started:.0f} s)",
              file=sys.stderr, flush=True)
    print(provenance(args, target.name, f"{args.kind}, split {args.split}, {len(cases)} cases "
                     f"from {len(sources)} sources, {tokens:.0f} target tokens on average",
                     "bench.tasks"))
    print("| method | " + " | ".join(f"keep {rate:g}" for rate in args.rates) + " |")
    print("|---|" + "---:|" * len(args.rates))
    for method in args.methods:
        cells = [f"{100 * kept[method, rate] / max(len(cases), 1):.0f}%" for rate in args.rates]
        print(f"| {method} | " + " | ".join(cells) + " |")
    for miss in misses[:args.show_misses]:
        print(f"miss: {miss}")
    print(f"\nwhole run: {time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=sorted(KINDS))
    parser.add_argument("--split", choices=("dev", "test"), default="test",
                        help="dev: the cases weights were chosen on; test: held out")
    parser.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")],
                        default=[0.125])
    parser.add_argument("--cases", type=int, default=0, help="a random sample of this many (0: all)")
    parser.add_argument("--methods", type=lambda s: s.split(","), default=list(METHODS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--draft", default="builtin")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--show-misses", type=int, default=5)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
