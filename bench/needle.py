"""Needle in a haystack: does a fact placed in unseen prose survive compression?

A case is a haystack of Debian-handbook paragraphs cut to N target tokens, one fact
sentence (the needle) inserted as its own paragraph at a uniformly random depth in
[5%, 95%] (the always-kept head and tail are excluded, they would flatter every
method), and a question about the fact passed as `--query`. A case counts as kept when
the whole needle sentence appears verbatim in the output. The needle templates below
are this benchmark's own: narrative sentences whose wording appears nowhere in the
draft's training templates (scripts/draft_training/facts.py).

    python -m bench.needle --lengths 4000,16000 --rates 0.1,0.125,0.25 --cases 20

`--paraphrase` asks each question in other words than the fact's, sharing only the
entity it is about: word overlap then finds the entity but not what is asked.

After the table, the draft's keeps per needle shape say which kinds of fact it misses.

`--window N` scores in windows of N draft tokens; on haystacks short enough for one
window, running with and without it shows what windowing costs.
"""

import argparse
import random
import time
from dataclasses import dataclass

from crossprefill_cli import compress
from crossprefill_cli.models.draft import load_draft
from crossprefill_cli.models.loading import draft_defaults

from .corpora import handbook_paragraphs
from .methods import bench_cache, random_scorer
from .targets import bench_target

NAMES = ["Oriane Vasquez", "Tomasz Okafor", "Ingrid Holloway", "Kenji Marlowe", "Amara Lindqvist",
         "Bastien Okoro", "Freya Castellanos", "Idris Pemberton", "Lucia Thornbury", "Ravi Achterberg"]
PLACES = ["Port Elsinore", "Vell Harbour", "Cairnmoor", "Saltmere", "Ostwick", "Brannock Isle"]
THINGS = ["brass compass", "walnut chest", "blue umbrella", "porcelain teapot", "copper kettle",
          "leather satchel", "stone owl", "glass lantern"]
# (fact, question sharing the fact's words, question in other words): the paraphrased
# question keeps only the entity (a name or place) and says the rest differently, so
# word overlap points at the entity, not at what is asked about it.
NEEDLES = [
    ("Before sailing to {place}, {name} buried the {thing} beneath the third olive tree.",
     "Where did {name} bury the {thing}?",
     "Under what did {name} hide that object before the voyage?"),
    ("The night ferry to {place} leaves from pier {number} only on rainy Thursdays.",
     "From which pier does the night ferry to {place} leave?",
     "Where do passengers board the late boat bound for {place}?"),
    ("{name} won the {place} chess open by sacrificing a bishop on move {number}.",
     "On which move did {name} sacrifice a bishop?",
     "When in the game did {name} give up a piece to win the tournament?"),
    ("In the cellar of the {place} mill, the miller kept exactly {number} barrels of cider.",
     "How many barrels of cider did the miller keep in the {place} mill?",
     "How much apple drink was stored underground at {place}?"),
    ("After the flood, the keeper of the {place} lighthouse painted its door {colour}.",
     "What colour is the door of the {place} lighthouse?",
     "Which shade was chosen for the entrance of the tower at {place}?"),
    ("{name} noticed that the {thing} in the hallway chimes {number} times at dawn.",
     "How many times does the {thing} chime at dawn?",
     "How often does the item that {name} observed ring early each morning?"),
    ("The oldest coin in the {place} museum was found inside a {thing} by {name}.",
     "Who found the oldest coin of the {place} museum?",
     "Who discovered the most ancient piece of money exhibited at {place}?"),
    ("To reach the {place} observatory, hikers follow trail {number} past the frozen lake.",
     "Which trail leads to the {place} observatory?",
     "What path should walkers take to get to the telescope site at {place}?"),
]
COLOURS = ["saffron yellow", "sea green", "crimson", "violet", "pale turquoise"]


@dataclass
class Case:
    text: str
    needle: str
    query: str
    depth: float
    shape: int  # index of the needle's template in NEEDLES


def make_case(rng: random.Random, tokens: int, count, paraphrase: bool = False) -> Case:
    paragraphs = handbook_paragraphs()
    start = rng.randrange(len(paragraphs))
    chosen, total = [], 0
    while total < tokens:
        paragraph = paragraphs[(start + len(chosen)) % len(paragraphs)]
        chosen.append(paragraph)
        total += count(paragraph + "\n\n")
    fill = dict(name=rng.choice(NAMES), place=rng.choice(PLACES), thing=rng.choice(THINGS),
                number=str(rng.randrange(11, 98)), colour=rng.choice(COLOURS))
    shape = rng.randrange(len(NEEDLES))  # draws as rng.choice did: same cases as before
    fact, question, paraphrased = NEEDLES[shape]
    needle, query = fact.format(**fill), (paraphrased if paraphrase else question).format(**fill)
    depth = rng.uniform(0.05, 0.95)
    at = max(1, min(len(chosen) - 1, round(depth * len(chosen))))
    chosen.insert(at, needle)
    return Case("\n\n".join(chosen) + "\n", needle, query, depth, shape)


def run(args) -> None:
    draft = load_draft(args.draft, device=args.device)
    target = bench_target(draft)
    # name: a pipeline scorer, or None for random chunks (seeded per case)
    methods = {f"crossprefill ({args.draft})": "evidence",
               f"attention alone ({args.draft}, the paper's scorer)": "attention",
               "lexical (BM25)": "lexical", "random chunks": None}
    kept = {(m, n, r): 0 for m in methods for n in args.lengths for r in args.rates}
    # the draft's keeps per needle shape: (shape, rate) -> [kept, cases]
    by_shape = {(s, r): [0, 0] for s in range(len(NEEDLES)) for r in args.rates}
    seconds = {n: 0.0 for n in args.lengths}
    for length in args.lengths:
        rng = random.Random(f"needle-{length}")
        for index in range(args.cases):
            case = make_case(rng, length, target.count, args.paraphrase)
            for name, scorer in methods.items():
                for rate in args.rates:
                    started = time.perf_counter()
                    result = compress(case.text, draft=draft, target=target, query=case.query,
                                      keep_rate=rate, window=args.window, lookahead=args.lookahead,
                                      scorer=scorer or random_scorer(index),
                                      cache=bench_cache())
                    if name.startswith("crossprefill"):
                        seconds[length] += time.perf_counter() - started
                    kept[name, length, rate] += case.needle in result.text
                    if name.startswith("crossprefill"):
                        by_shape[case.shape, rate][0] += case.needle in result.text
                        by_shape[case.shape, rate][1] += 1
            print(f"  {length} tokens, case {index + 1}/{args.cases} done", flush=True)
    window = f"window {args.window} draft tokens" if args.window else "default window"
    lookahead = args.lookahead or draft_defaults(args.draft)["lookahead"]
    wording = "paraphrased questions" if args.paraphrase else "questions in the fact's words"
    print(f"\nNeedle kept (whole sentence verbatim), {args.cases} cases per cell, {wording}, "
          f"target {target.name}, draft {args.draft}, lookahead {lookahead}, {window}\n")
    header = [f"{n // 1000}k @ {r:g}" for n in args.lengths for r in args.rates]
    print("| method | " + " | ".join(header) + " |")
    print("|---" * (len(header) + 1) + "|")
    for name in methods:
        cells = [f"{100 * kept[name, n, r] / args.cases:.0f}%" for n in args.lengths
                 for r in args.rates]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\ncrossprefill's keeps by needle shape (all lengths), kept/cases at "
          + " / ".join(f"{r:g}" for r in args.rates))
    for shape, (fact, _, _) in enumerate(NEEDLES):
        cells = [f"{by_shape[shape, r][0]}/{by_shape[shape, r][1]}" for r in args.rates]
        print(f"  {fact[:60]}...: " + " / ".join(cells))
    for length in args.lengths:
        print(f"\nmean crossprefill time per compress at {length} tokens "
              f"(first rate scores, others reuse): "
              f"{seconds[length] / (args.cases * len(args.rates)):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draft", default="builtin")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lookahead", type=int, help="lookahead queries (default: the draft's)")
    parser.add_argument("--lengths", default="4000,16000",
                        type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--rates", default="0.1,0.125,0.25",
                        type=lambda s: [float(x) for x in s.split(",")])
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--window", type=int, help="draft tokens per window (default: the "
                        "draft's context), to compare windowed and whole-input scoring")
    parser.add_argument("--paraphrase", action="store_true",
                        help="ask in other words than the fact's (only the entity is shared)")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
