"""The question inside the prompt: does finding it steer compression as well as `--query`?

Every case is a whole prompt whose question sits only inside it, as benchmark harnesses
and chat clients send them. Three ways of compressing it are compared, each at every
keep rate, from one scoring each (`pipeline.analyse`, then `finish` per rate):

- **on**: `query=None` with detection (the default): `query.detect` finds the question;
- **off**: `detect_query=False`: no query, the draft's lookahead from the prompt's end;
- **ceiling**: `query=` the question the template asks (defined below).

A case counts as kept when every evidence sentence is in the output verbatim. When the
detected query is the question, on and ceiling share the draft's scores (a score cache)
and differ only in that on keeps the detected question's span whole.

Tasks (templates verbatim from NVIDIA/RULER scripts/data/synthetic/constants.py and
niah.py, or LongBench's; the generators are this module's own, seeded per case):

| task | haystack | needles | evidence |
|---|---|---|---|
| niah_single_1 | RULER's noise line, repeated | 1 word key, a 7-digit number | that needle |
| niah_single_2 | handbook prose | 1 word key, a 7-digit number | that needle |
| niah_single_3 | handbook prose | 1 word key, a uuid | that needle |
| niah_multikey_1 | handbook prose | 4 word keys, a number each | the asked key's needle |
| niah_multikey_uuid | handbook prose | 4 uuid keys, a uuid each | the asked key's needle |
| niah_multikey_2 | other needles (word keys) | 1 word key, a 7-digit number | that needle |
| niah_multikey_3 | other needles (uuid keys) | 1 uuid key, a uuid | that needle |
| niah_multivalue | handbook prose | 1 word key, 4 numbers | all 4 needles |
| niah_multiquery | handbook prose | 4 word keys, all 4 asked | all 4 needles |
| vt | handbook prose | RULER's 1 chain of 4 hops | all 5 `VAR` sentences |
| qa | LongBench QA, `Passage i:` | a fact passage (`bench.needle`) | the fact |
| chat_chatml, chat_llama3 | a document turn, a reply | a fact in the document | the fact |

The question (passed as query= for the ceiling, and looked for in the detected query)
is the template's last line for niah, that line without its `Question: ` label for vt,
`{input}` for qa, and the last user turn's text for the chats.

RULER's needle is "One of the special magic {numbers|uuids} for {key} is: {value}.",
word keys are adjective-noun pairs as RULER's (from this module's lists), numbers have 7
digits, uuids are version-4 from the case's RNG; with one key asked and one value, the
template takes RULER's singular wording. Needles (and the chain's sentences, in chain
order) go in at sentence boundaries of the prose at depths drawn uniformly in [5%, 95%]
(the always-kept head and tail are left out, as in `bench.needle`); in the noise
haystack they are lines among the noise lines. RULER's answer prefix (" The special
magic numbers for ... are") is not appended: it starts the model's answer, after the
chat template. The qa and chat documents are `bench.needle` haystacks (handbook
paragraphs with one fact sentence and a question about it). Each prompt is built, its
target tokens counted, and rebuilt from the same seed with the haystack rescaled, so it
holds about N target tokens (the table gives the mean).

Detection, per task, from the "on" run: **exact** when query_source is "detected" and
result.query contains the question above verbatim with at most `EXACT_SLACK` other
characters (labels, "Answer:"); **wrong span** when something else was detected;
**none** when query_source is "none". One example of each miss is printed.

    python -m bench.question --cases 10 --lengths 4000,16000 --rates 0.125,0.25
"""

import random
import re
import string
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass

from crossprefill_cli.errors import UsageError
from crossprefill_cli.models.draft import load_draft
from crossprefill_cli.pipeline.analysis import analyse, finish

from .corpora import handbook_run
from .methods import bench_cache
from .needle import make_case as needle_case
from .options import parsed, print_task_rows, provenance, suite_parser
from .targets import bench_target

EXACT_SLACK = 100

# NVIDIA/RULER scripts/data/synthetic/constants.py ("niah", "variable_tracking") and niah.py.
RULER_NIAH = ("Some special magic {type_needle_v} are hidden within the following text. Make sure "
              "to memorize it. I will quiz you about the {type_needle_v} afterwards.\n{context}\n"
              "What are all the special magic {type_needle_v} for {query} mentioned in the "
              "provided text?")
RULER_NEEDLE = "One of the special magic {type_needle_v} for {key} is: {value}."
RULER_NOISE = ("The grass is green. The sky is blue. The sun is yellow. Here we go. "
               "There and back again.")
RULER_VT = ("Memorize and track the chain(s) of variable assignment hidden in the following "
            "text.\n\n{context}\nQuestion: Find all variables that are assigned the value "
            "{query} in the text above.")
LONGBENCH_QA = ("Answer the question based on the given passages. Only give me the answer and do "
                "not output any other words.\n\nThe following are given passages.\n{context}\n\n"
                "Answer the question based on the given passages. Only give me the answer and do "
                "not output any other words.\n\nQuestion: {input}\nAnswer:")
SYSTEM = "You are a helpful assistant."
ASK = "Please read the following document carefully; I will ask you about it."
REPLY = "I have read the document. What would you like to know about it?"
CHATS = {
    "chat_chatml": (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{ASK}\n\n"
                    "{document}<|im_end|>\n<|im_start|>assistant\n" f"{REPLY}<|im_end|>\n"
                    "<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"),
    "chat_llama3": ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                    f"{SYSTEM}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n{ASK}\n\n"
                    "{document}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
                    f"{REPLY}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
                    "{question}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"),
}
# task: (haystack, key kind, value kind, keys, values per key, keys asked), as RULER's
# synthetic.yaml names them (niah_multikey_uuid: RULER's multikey_3 kinds, in prose).
NIAH = {
    "niah_single_1": ("noise", "words", "numbers", 1, 1, 1),
    "niah_single_2": ("prose", "words", "numbers", 1, 1, 1),
    "niah_single_3": ("prose", "words", "uuids", 1, 1, 1),
    "niah_multikey_1": ("prose", "words", "numbers", 4, 1, 1),
    "niah_multikey_uuid": ("prose", "uuids", "uuids", 4, 1, 1),
    "niah_multikey_2": ("needles", "words", "numbers", 1, 1, 1),
    "niah_multikey_3": ("needles", "uuids", "uuids", 1, 1, 1),
    "niah_multivalue": ("prose", "words", "numbers", 1, 4, 1),
    "niah_multiquery": ("prose", "words", "numbers", 4, 1, 4),
}
TASKS = [*NIAH, "vt", "qa", *CHATS]
ADJECTIVES = """abundant ancient bitter brave calm clever crooked curious damp eager elastic
fancy fragile gentle gleaming hollow humble icy jolly lavish lively mellow narrow nimble
obedient odd plucky quiet rapid rustic scarce shiny silent sleepy sturdy tender tidy vast
wary witty zealous""".split()
NOUNS = """anchor apricot badge basket beacon blanket bucket cabinet canyon carpet cedar
chimney comet cushion dolphin engine falcon fountain garnet harbor helmet iceberg jacket
kettle ladder lantern meadow mirror nectar orchard pebble pillow quarry saddle spindle
teapot thimble trumpet valley walnut""".split()
BOUNDARY = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


@dataclass
class Case:
    text: str
    question: str  # what the template asks: passed as query= for the ceiling
    evidence: list[str]  # sentences that must all survive verbatim


def random_item(rng: random.Random, kind: str) -> str:
    if kind == "numbers":
        return str(rng.randint(10 ** 6, 10 ** 7 - 1))
    if kind == "uuids":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return f"{rng.choice(ADJECTIVES)}-{rng.choice(NOUNS)}"


def distinct(draw, n: int) -> list[str]:
    items: list[str] = []
    while len(items) < n:
        item = draw()
        if item not in items:
            items.append(item)
    return items


def into_prose(rng: random.Random, paragraphs: list[str], sentences: list[str]) -> str:
    """The paragraphs (blank lines between) with each sentence put in, in the order given,
    at the first sentence boundary after a depth drawn uniformly in [5%, 95%]."""
    text = "\n\n".join(paragraphs)
    spots = []
    for _ in sentences:
        match = BOUNDARY.search(text, int(rng.uniform(0.05, 0.95) * len(text)))
        spots.append(match.end() if match else text.rfind("\n\n") + 2)
    for at, sentence in reversed(list(zip(sorted(spots), sentences))):
        text = text[:at] + sentence + " " + text[at:]
    return text


def into_noise(rng: random.Random, room: int, count, needles: list[str]) -> str:
    """RULER's noise haystack: its noise line repeated, needles as lines among them."""
    lines = [RULER_NOISE] * max(20, room // count(RULER_NOISE + "\n"))
    places = sorted(rng.sample(range(len(lines) // 20, len(lines) * 19 // 20), len(needles)))
    for at, needle in reversed(list(zip(places, needles))):
        lines.insert(at, needle)
    return "\n".join(lines)


def into_needles(rng: random.Random, room: int, count, needles: list[str], kinds) -> str:
    """RULER's needle haystack (multikey_2, multikey_3): lines of other needles of the same
    shape, other keys and values, the real needles among them."""
    key_kind, value_kind = kinds
    taken = {needle.split(" for ", 1)[1].split(" is: ")[0] for needle in needles}
    lines: list[str] = []
    while len(lines) < max(20, room // count(needles[0] + "\n")):
        key = random_item(rng, key_kind)
        if key not in taken:
            taken.add(key)
            lines.append(RULER_NEEDLE.format(type_needle_v=value_kind, key=key,
                                             value=random_item(rng, value_kind)))
    places = sorted(rng.sample(range(len(lines) // 20, len(lines) * 19 // 20), len(needles)))
    for at, needle in reversed(list(zip(places, needles))):
        lines.insert(at, needle)
    return "\n".join(lines)


def niah_case(task: str, rng: random.Random, room: int, count) -> Case:
    haystack, key_kind, value_kind, n_keys, n_values, n_asked = NIAH[task]
    keys = distinct(lambda: random_item(rng, key_kind), n_keys)
    values = [distinct(lambda: random_item(rng, value_kind), n_values) for _ in keys]
    def needle(i: int, value: str) -> str:
        return RULER_NEEDLE.format(type_needle_v=value_kind, key=keys[i], value=value)
    needles = [needle(i, v) for i in range(n_keys) for v in values[i]]
    rng.shuffle(needles)
    asked = rng.sample(range(n_keys), n_asked)
    query = (", ".join(keys[i] for i in asked[:-1]) + ", and " + keys[asked[-1]]
             if n_asked > 1 else keys[asked[0]])
    template, kind = RULER_NIAH, value_kind
    if n_asked * n_values == 1:  # RULER's singular wording (niah.py)
        template = (template.replace("Some", "A").replace("are all", "is").replace("are", "is")
                    .replace("answers", "answer"))
        kind = kind[:-1]
    context = (into_noise(rng, room, count, needles) if haystack == "noise"
               else into_needles(rng, room, count, needles, (key_kind, value_kind))
               if haystack == "needles"
               else into_prose(rng, handbook_run(rng, room, count), needles))
    text = template.format(type_needle_v=kind, context=context, query=query)
    return Case(text, text.rsplit("\n", 1)[1], [needle(i, v) for i in asked for v in values[i]])


def vt_case(rng: random.Random, room: int, count) -> Case:
    """RULER's variable tracking, 1 chain of 4 hops: five-letter names, a 5-digit value."""
    names = distinct(lambda: "".join(rng.choices(string.ascii_uppercase, k=5)), 5)
    value = str(rng.randint(10000, 99999))
    chain = [f"VAR {names[0]} = {value}."] + [f"VAR {names[j + 1]} = VAR {names[j]}."
                                              for j in range(4)]
    text = RULER_VT.format(context=into_prose(rng, handbook_run(rng, room, count), chain),
                           query=value)
    return Case(text, text.rsplit("\n", 1)[1].removeprefix("Question: "), chain)


def qa_case(rng: random.Random, room: int, count) -> Case:
    base = needle_case(rng, room, count)
    passages = base.text.strip().split("\n\n")
    context = "\n".join(f"Passage {i}:\n{p}" for i, p in enumerate(passages, 1))
    return Case(LONGBENCH_QA.format(context=context, input=base.query), base.query, [base.needle])


def chat_case(task: str, rng: random.Random, room: int, count) -> Case:
    base = needle_case(rng, room, count)
    text = CHATS[task].format(document=base.text.strip(), question=base.query)
    return Case(text, base.query, [base.needle])


def make_case(task: str, length: int, count, seed: str) -> Case:
    """The case for `seed`, its haystack rescaled once so the prompt holds ~`length` tokens."""
    build = (vt_case if task == "vt" else qa_case if task == "qa"
             else (lambda *a: chat_case(task, *a)) if task in CHATS
             else (lambda *a: niah_case(task, *a)))
    room = length
    for _ in range(2):
        case = build(random.Random(seed), room, count)
        room = max(100, round(room * length / count(case.text)))
    return case


def evidence_kept(analysis, rates: list[float], target, evidence: list[str], failures: list[str],
                  label: str) -> list[tuple[float, bool]]:
    """(rate, whether every evidence sentence survives) for each rate `finish` can meet;
    a budget it cannot (below what must be kept) goes into `failures`."""
    kept = []
    for rate in rates:
        try:
            result = finish(analysis, keep_rate=rate, target=target)
        except UsageError as error:
            failures.append(f"{label} @ {rate:g}: {error}")
            continue
        kept.append((rate, all(e in result.text for e in evidence)))
    return kept


def detection(analysis, question: str) -> str:
    """exact, wrong span or none (see the module docstring), from what `finish` copies
    into the result: the analysis's query and query_source."""
    if analysis.query_source != "detected" or not analysis.query:
        return "none"
    query = analysis.query
    exact = question in query and len(query) - len(question) <= EXACT_SLACK
    return "exact" if exact else "wrong span"


def run(args) -> None:
    started = time.perf_counter()
    draft = load_draft(args.draft, device=args.device)
    target = bench_target(draft)
    modes = ("on", "off", "ceiling")
    kept, tokens, found, misses, failures = Counter(), Counter(), Counter(), {}, []
    scorings, scoring_seconds = Counter(), Counter()
    for length in args.lengths:
        for task in args.tasks:
            for index in range(args.cases):
                case = make_case(task, length, target.count, f"question-{args.seed}-{task}-"
                                 f"{length}-{index}")
                tokens[task, length] += target.count(case.text)
                options = {"on": {}, "off": dict(detect_query=False),
                           "ceiling": dict(query=case.question)}
                for mode in modes:
                    clock = time.perf_counter()
                    analysis = analyse(case.text, draft=draft, cache=bench_cache(),
                                       **options[mode])
                    scorings[length] += not analysis.cached
                    scoring_seconds[length] += time.perf_counter() - clock
                    if mode == "on":
                        verdict = detection(analysis, case.question)
                        found[task, length, verdict] += 1
                        if verdict != "exact":
                            misses.setdefault((task, verdict), (case.question, analysis.query))
                    for rate, whole in evidence_kept(analysis, args.rates, target, case.evidence,
                                                     failures, f"{task} {length} #{index} {mode}"):
                        kept[task, length, mode, rate] += whole
                print(f"  {length} tokens, {task}, case {index + 1}/{args.cases} done "
                      f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    n = args.cases
    print(provenance(args, target.name, f"{n} cases per row", "bench.question"))
    print("All evidence sentences kept verbatim (share of cases); on = the question detected "
          "in the prompt, off = no query, ceiling = the question passed as query=\n")
    columns = [(f"{mode} @ {rate:g}", (mode, rate)) for rate in args.rates for mode in modes]
    for length in args.lengths:
        print_task_rows(columns, args.tasks, share=lambda task, key: kept[task, length, *key] / n,
                        tokens=lambda task: tokens[task, length] / n, mean_label="**all tasks**",
                        mean_tokens=str(length), header=length == args.lengths[0])
    print(f"\nDetection (the 'on' runs): exact = the question above within the detected query, "
          f"at most {EXACT_SLACK} other characters; wrong span = something else detected; "
          "none = nothing detected\n")
    print("| task | tokens | exact | wrong span | none |\n|---|---:|---:|---:|---:|")
    for length in args.lengths:
        for task in args.tasks:
            cells = [f"{found[task, length, v]}/{n}" for v in ("exact", "wrong span", "none")]
            print(f"| {task} | {length} | " + " | ".join(cells) + " |")
    for (task, verdict), (question, query) in misses.items():
        print(f"\n{task}, {verdict}: asked {question!r}, detected {query!r:.300}")
    for failure in failures:
        print(f"failed: {failure}")
    for length in args.lengths:
        print(f"\n{length} tokens: {scorings[length]} draft scorings, "
              f"{scoring_seconds[length] / max(1, scorings[length]):.1f} s each")
    print(f"whole run: {time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = suite_parser(__doc__.splitlines()[0], tasks=TASKS, cases=10, rates=[0.125, 0.25])
    parser.add_argument("--seed", default="0", help="cases are drawn from this seed")
    run(parsed(parser, TASKS))

if __name__ == "__main__":
    main()
