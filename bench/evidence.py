"""Evidence kept by each scorer, on every kind of long-context task, side by side.

One suite, one table: for each task, prompt size and keep rate, the share of cases
whose evidence sentences all survive verbatim, for the default scorer (`evidence`) and
for each signal alone (`attention`, the paper's scorer; `lexical`; `surprise`) and
random chunks. The question is given as `query=`, as `--query` does. Each case is read
by the draft once (`pipeline.analyse`); every scorer and rate then chooses from the
same reading (`finish`), so the rows differ only in how units are scored.

| task | haystack | evidence |
|---|---|---|
| needle | handbook prose | a fact sentence, asked in its words (`bench.needle`) |
| paraphrase | handbook prose | the same, asked in other words (only the entity shared) |
| decoys | handbook prose | the fact among 4 same-shape facts about other entities |
| bridge | handbook prose | two facts: the question names X; X -> a person -> the answer |
| bridge_decoys | handbook prose | the same among 3 decoys of each fact's shape |
| niah_single | RULER's noise line | RULER niah_single_1: one needle |
| niah_multikey | other needles | RULER niah_multikey_2: word keys, the asked key's needle |
| niah_multikey_uuid | other needles | RULER niah_multikey_3: uuid keys and values |
| niah_multivalue | handbook prose | RULER niah_multivalue: 4 values of one key |
| niah_multiquery | handbook prose | RULER niah_multiquery: 4 keys asked at once |
| vt | handbook prose | RULER variable tracking: the 5 sentences of a 4-hop chain |
| code | a repository dump | the broken line of a named function (`bench.code`), with the named-definition rule off |

The RULER tasks and the code dumps are `bench.question`'s and `bench.code`'s
generators; the bridge facts and decoys are this module's. Cases are seeded by split,
task, size and index: `--split dev` (the cases the weights in `evidence` were chosen
on) and `--split test` (the default, never used to choose anything) draw different
cases from the same generators.

    python -m bench.evidence --cases 20 --lengths 4000,16000 --rates 0.1,0.125,0.25
"""

import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace

from crossprefill_cli.pipeline.analysis import analyse
from crossprefill_cli.pipeline.draft_source import DraftSource
from crossprefill_cli.pipeline.profiles import load_profile

from . import code as code_bench
from . import needle as needle_bench
from . import question
from .corpora import handbook_run
from .methods import bench_cache, random_scorer
from .options import parsed, print_task_rows, provenance, suite_parser
from .targets import bench_target

SCORERS = ("evidence", "attention", "lexical", "surprise")
ROWS = (*SCORERS, "random")
# (link fact, answer fact, question): the question names the link's entity and asks for
# the answer fact's attribute in other words; the answer fact shares no word with it,
# and the person between them is named in neither.
BRIDGES = [
    ("The {place} lighthouse has been looked after by {person} since the storm.",
     "{person} treasures a carved {thing} above the stove.",
     "What object does the keeper of the {place} lighthouse cherish most?"),
    ("The choir of {place} is conducted by {person} every winter.",
     "{person} was raised in the hamlet of {village}.",
     "Where did the conductor of the {place} choir spend their childhood?"),
    ("Only {person} holds a key to the {place} archive.",
     "{person} drives an old {colour} tractor to work.",
     "What colour is the farm vehicle of the person holding the key to the {place} archive?"),
    ("The ferry that crosses to {place} is skippered by {person}.",
     "{person} plays the {instrument} in a small band on Fridays.",
     "Which musical instrument does the skipper of the {place} ferry perform on?"),
]
PEOPLE = ["Marta Quill", "Osric Fennimore", "Leontine Barrow", "Hamish Devereaux",
          "Sunniva Rask", "Teodor Vance", "Ysolde Harker", "Crispin Ottoway", "Nadia Brisk",
          "Evander Sloane"]
VILLAGES = ["Lower Wendle", "Hawksby", "Quarrington", "Felbridge", "Ashcombe", "Dunmorrow"]
INSTRUMENTS = ["cello", "accordion", "banjo", "oboe", "harmonium", "bassoon"]
FILLS = dict(place=needle_bench.PLACES + ["Gildmoor", "Rookhaven"], thing=needle_bench.THINGS,
             colour=needle_bench.COLOURS, village=VILLAGES, instrument=INSTRUMENTS)
TASKS = ["needle", "paraphrase", "decoys", "bridge", "bridge_decoys", "niah_single",
         "niah_multikey", "niah_multikey_uuid", "niah_multivalue", "niah_multiquery", "vt", "code"]
RULER = {"niah_single": "niah_single_1", "niah_multikey": "niah_multikey_2",
         "niah_multikey_uuid": "niah_multikey_3", "niah_multivalue": "niah_multivalue",
         "niah_multiquery": "niah_multiquery"}


@dataclass
class Case:
    text: str
    query: str
    evidence: list[str]
    profile: str = "text"


def distinct_fills(rng: random.Random, n: int) -> list[dict[str, str]]:
    """n fills of the bridge templates, no two sharing a value."""
    pools = {name: rng.sample(values, n) for name, values in FILLS.items()}
    people = rng.sample(PEOPLE, n)
    return [dict(person=people[i], **{name: pool[i] for name, pool in pools.items()})
            for i in range(n)]


def bridge_case(rng: random.Random, room: int, count, decoys: int) -> Case:
    link, answer, asked = rng.choice(BRIDGES)
    fills = distinct_fills(rng, 1 + decoys)
    facts = [link.format(**fills[0]), answer.format(**fills[0])]
    others = [template.format(**fill) for fill in fills[1:] for template in (link, answer)]
    sentences = facts + others
    rng.shuffle(sentences)
    text = question.into_prose(rng, handbook_run(rng, room, count), sentences)
    return Case(text + "\n", asked.format(**fills[0]), facts)


def decoys_case(rng: random.Random, room: int, count) -> Case:
    """A `bench.needle` case with 4 more facts of its shape about other entities."""
    base = needle_bench.make_case(rng, room, count)
    fact, _, _ = needle_bench.NEEDLES[base.shape]
    used = {word for word in base.needle.split()}
    sentences = []
    while len(sentences) < 4:
        fill = dict(name=rng.choice(needle_bench.NAMES), place=rng.choice(needle_bench.PLACES),
                    thing=rng.choice(needle_bench.THINGS), number=str(rng.randrange(11, 98)),
                    colour=rng.choice(needle_bench.COLOURS))
        decoy = fact.format(**fill)
        # a decoy shares no entity with the needle, so the question fits only the needle
        if not any(value.split()[0] in used for value in fill.values()) and decoy not in sentences:
            sentences.append(decoy)
    paragraphs = base.text.strip().split("\n\n")
    return Case(question.into_prose(rng, paragraphs, sentences) + "\n", base.query, [base.needle])


def make_case(task: str, length: int, count, seed: str) -> Case:
    rng = random.Random(seed)
    if task in ("needle", "paraphrase"):
        base = needle_bench.make_case(rng, length, count, paraphrase=task == "paraphrase")
        return Case(base.text, base.query, [base.needle])
    if task == "decoys":
        return decoys_case(rng, length, count)
    if task in ("bridge", "bridge_decoys"):
        return bridge_case(rng, length, count, decoys=3 if task == "bridge_decoys" else 0)
    if task == "code":
        base = code_bench.make_case(rng, length, count)
        return Case(base.text, base.query, [base.broken_line], profile="code")
    base = question.make_case(RULER.get(task, task), length, count, seed)
    return Case(base.text, base.question, base.evidence)


def profiles() -> dict[str, object]:
    """The profiles cases use: code without the named-definition rule (what the scores
    keep, not the rule)."""
    return {"text": load_profile("text"),
            "code": load_profile("code").with_overrides(favour_named_definitions=False)}


def run(args) -> None:
    started = time.perf_counter()
    # the engine a user's compress gets (numpy for the bundled draft)
    draft = DraftSource(args.draft, device=args.device, dtype="auto").load()
    target = bench_target(draft)
    settings = profiles()
    cache = bench_cache()
    kept, tokens, failures = Counter(), Counter(), []
    seconds = Counter()
    for length in args.lengths:
        for task in args.tasks:
            for index in range(args.cases):
                case = make_case(task, length, target.count,
                                 f"evidence-{args.split}-{task}-{length}-{index}")
                tokens[task, length] += target.count(case.text)
                clock = time.perf_counter()
                # the surprise scorer's reading holds every draft signal: one pass for all rows
                read = analyse(case.text, draft=draft, query=case.query, scorer="surprise",
                               profile=settings[case.profile], cache=cache)
                seconds[length] += time.perf_counter() - clock
                for row in ROWS:
                    analysis = (analyse(case.text, draft=draft, query=case.query,
                                        profile=settings[case.profile],
                                        scorer=random_scorer(index))
                                if row == "random" else replace(read, scorer=row))
                    for rate, whole in question.evidence_kept(
                            analysis, args.rates, target, case.evidence, failures,
                            f"{task} {length} #{index} {row}"):
                        kept[row, task, length, rate] += whole
                print(f"  {length} tokens, {task}, case {index + 1}/{args.cases} done "
                      f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    print_table(args, target, kept, tokens)
    for failure in failures:
        print(f"failed: {failure}")
    for length in args.lengths:
        print(f"\n{length} tokens: {seconds[length] / (args.cases * len(args.tasks)):.2f} s per "
              "draft reading (attention and surprise, one pass)")
    print(f"whole run: {time.perf_counter() - started:.0f} s")


def print_table(args, target, kept: Counter, tokens: Counter) -> None:
    n = args.cases
    print(provenance(args, target.name, f"split {args.split}, {n} cases per cell",
                     "bench.evidence"))
    print("All evidence kept verbatim (share of cases), by scorer, prompt size and keep rate\n")
    for length in args.lengths:
        print(f"**{length} target tokens**\n")
        print_task_rows([(f"{row} @ {rate:g}", (row, rate)) for rate in args.rates for row in ROWS],
                        args.tasks, share=lambda task, key: kept[key[0], task, length, key[1]] / n,
                        tokens=lambda task: tokens[task, length] / n, mean_label="**mean**")
        print()

def main() -> None:
    parser = suite_parser(__doc__.splitlines()[0], tasks=TASKS, cases=20, rates=[0.1, 0.125, 0.25])
    parser.add_argument("--split", choices=("dev", "test"), default="test",
                        help="dev: the cases weights were chosen on; test: held out")
    run(parsed(parser, TASKS))

if __name__ == "__main__":
    main()
