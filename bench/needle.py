"""Needle in a haystack: does a fact placed in unseen prose survive compression?

A case is a haystack of Debian-handbook paragraphs cut to N target tokens, one fact
sentence (the needle) inserted as its own paragraph at a uniformly random depth in
[5%, 95%] (the always-kept head and tail are excluded, they would flatter every
method), and a question about the fact passed as `--query`. A case counts as kept when
the whole needle sentence appears verbatim in the output. The needle templates below
are this benchmark's own: narrative sentences whose wording appears nowhere in the
draft's training templates (scripts/draft_facts.py).

    python -m bench.needle --lengths 4000,16000 --rates 0.1,0.125,0.25 --cases 20

`--window N` scores in windows of N draft tokens; on haystacks short enough for one
window, running with and without it shows what windowing costs.
"""

import argparse
import random
import time
from dataclasses import dataclass

from crossprefill_cli import compress
from crossprefill_cli.draft import load_draft

from .corpora import handbook_paragraphs
from .methods import MemoScorer, lexical_scorer, random_scorer
from .targets import bench_target

NAMES = ["Oriane Vasquez", "Tomasz Okafor", "Ingrid Holloway", "Kenji Marlowe", "Amara Lindqvist",
         "Bastien Okoro", "Freya Castellanos", "Idris Pemberton", "Lucia Thornbury", "Ravi Achterberg"]
PLACES = ["Port Elsinore", "Vell Harbour", "Cairnmoor", "Saltmere", "Ostwick", "Brannock Isle"]
THINGS = ["brass compass", "walnut chest", "blue umbrella", "porcelain teapot", "copper kettle",
          "leather satchel", "stone owl", "glass lantern"]
NEEDLES = [
    ("Before sailing to {place}, {name} buried the {thing} beneath the third olive tree.",
     "Where did {name} bury the {thing}?"),
    ("The night ferry to {place} leaves from pier {number} only on rainy Thursdays.",
     "From which pier does the night ferry to {place} leave?"),
    ("{name} won the {place} chess open by sacrificing a bishop on move {number}.",
     "On which move did {name} sacrifice a bishop?"),
    ("In the cellar of the {place} mill, the miller kept exactly {number} barrels of cider.",
     "How many barrels of cider did the miller keep in the {place} mill?"),
    ("After the flood, the keeper of the {place} lighthouse painted its door {colour}.",
     "What colour is the door of the {place} lighthouse?"),
    ("{name} noticed that the {thing} in the hallway chimes {number} times at dawn.",
     "How many times does the {thing} chime at dawn?"),
    ("The oldest coin in the {place} museum was found inside a {thing} by {name}.",
     "Who found the oldest coin of the {place} museum?"),
    ("To reach the {place} observatory, hikers follow trail {number} past the frozen lake.",
     "Which trail leads to the {place} observatory?"),
]
COLOURS = ["saffron yellow", "sea green", "crimson", "violet", "pale turquoise"]


@dataclass
class Case:
    text: str
    needle: str
    query: str
    depth: float


def make_case(rng: random.Random, tokens: int, count) -> Case:
    paragraphs = handbook_paragraphs()
    start = rng.randrange(len(paragraphs))
    chosen, total = [], 0
    while total < tokens:
        paragraph = paragraphs[(start + len(chosen)) % len(paragraphs)]
        chosen.append(paragraph)
        total += count(paragraph + "\n\n")
    fill = dict(name=rng.choice(NAMES), place=rng.choice(PLACES), thing=rng.choice(THINGS),
                number=str(rng.randrange(11, 98)), colour=rng.choice(COLOURS))
    fact, question = rng.choice(NEEDLES)
    needle, query = fact.format(**fill), question.format(**fill)
    depth = rng.uniform(0.05, 0.95)
    at = max(1, min(len(chosen) - 1, round(depth * len(chosen))))
    chosen.insert(at, needle)
    return Case("\n\n".join(chosen) + "\n", needle, query, depth)


def run(args) -> None:
    draft = load_draft(args.draft, device=args.device)
    target = bench_target(draft)
    methods = {f"crossprefill ({args.draft})": MemoScorer(), "lexical (IDF overlap)": lexical_scorer,
               "random chunks": None}
    kept = {(m, n, r): 0 for m in methods for n in args.lengths for r in args.rates}
    seconds = {n: 0.0 for n in args.lengths}
    for length in args.lengths:
        rng = random.Random(f"needle-{length}")
        for index in range(args.cases):
            case = make_case(rng, length, target.count)
            for name, scorer in methods.items():
                for rate in args.rates:
                    started = time.perf_counter()
                    result = compress(case.text, draft=draft, target=target, query=case.query,
                                      keep_rate=rate, window=args.window,
                                      scorer=scorer or random_scorer(index))
                    if name.startswith("crossprefill"):
                        seconds[length] += time.perf_counter() - started
                    kept[name, length, rate] += case.needle in result.text
            print(f"  {length} tokens, case {index + 1}/{args.cases} done", flush=True)
    window = f"window {args.window} draft tokens" if args.window else "default window"
    print(f"\nNeedle kept (whole sentence verbatim), {args.cases} cases per cell, "
          f"target {target.name}, draft {args.draft}, {window}\n")
    header = [f"{n // 1000}k @ {r:g}" for n in args.lengths for r in args.rates]
    print("| method | " + " | ".join(header) + " |")
    print("|---" * (len(header) + 1) + "|")
    for name in methods:
        cells = [f"{100 * kept[name, n, r] / args.cases:.0f}%" for n in args.lengths
                 for r in args.rates]
        print(f"| {name} | " + " | ".join(cells) + " |")
    for length in args.lengths:
        print(f"\nmean crossprefill time per compress at {length} tokens "
              f"(first rate scores, others reuse): "
              f"{seconds[length] / (args.cases * len(args.rates)):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draft", default="builtin")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lengths", default="4000,16000",
                        type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--rates", default="0.1,0.125,0.25",
                        type=lambda s: [float(x) for x in s.split(",")])
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--window", type=int, help="draft tokens per window (default: the "
                        "draft's context), to compare windowed and whole-input scoring")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
