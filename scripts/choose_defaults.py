"""Choose a trained draft's scoring defaults on a development set, never on bench/.

How many greedy lookahead tokens help depends on the draft: a draft that cannot answer
the question generates noise. This script measures it on development cases built from
what the draft was *not* trained on, the same way for every candidate value, and
writes the winner to the draft folder's `crossprefill.yaml`, where crossprefill's
`lookahead: auto` profiles read it (`crossprefill_cli.models.loading.draft_defaults`).

A development case: a passage of the held-out Python-docs files (the 5% that
train_draft.py never trains on), 1-4 facts made with the held-out templates and word
pool of draft_training/facts.py inserted as paragraphs at random depths, and the held-out
question about one of them. Each case is compressed through crossprefill's own
pipeline (`compress`, text profile, question as query) at 12.5% keep; a case counts
when the whole asked fact sentence is in the output. The benchmark's haystacks
(Debian handbook) and needle templates (bench/needle.py) are not used here.

    python scripts/choose_defaults.py /work/draftbuild/best --out /work/draftbuild

Ties go to the larger lookahead (closer to the paper's 8).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from draft_training.corpus import Corpus, load_corpus, word_list  # noqa: E402
from draft_training.facts import FactMaker  # noqa: E402

from crossprefill_cli import compress  # noqa: E402
from crossprefill_cli.models.draft import load_draft  # noqa: E402
from crossprefill_cli.models.loading import DRAFT_DEFAULTS_FILE  # noqa: E402
from crossprefill_cli.models.target import DEFAULT_TARGET, load_target  # noqa: E402

SEED = 20261123
LOOKAHEADS = (1, 2, 4, 8)
KEEP_RATE = 0.125


def dev_cases(words: list[str], corpus: Corpus, count: int, chars: int, seed: int):
    """(text, asked fact sentence, question) triples from held-out text and templates."""
    rng = random.Random(seed)
    facts_maker = FactMaker(words, rng, heldout=True)
    cases = []
    while len(cases) < count:
        facts, question, _, asked = facts_maker.prose_set(rng.randint(1, 4))
        paragraphs = [p for p in corpus.passage(rng, chars).split("\n\n") if p.strip()]
        if len(paragraphs) < 4:
            continue
        for fact in facts:  # never into the always-kept first or last paragraph
            paragraphs.insert(rng.randint(1, len(paragraphs) - 1), fact)
        cases.append(("\n\n".join(paragraphs) + "\n", facts[asked], question))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("draft", help="the draft folder to measure and write crossprefill.yaml into")
    parser.add_argument("--out", help="training folder whose train_log.json records the result")
    parser.add_argument("--cases", type=int, default=30, help="cases per length")
    parser.add_argument("--chars", default="16000,64000",
                        help="passage lengths in characters (about 4k and 16k draft tokens)")
    args = parser.parse_args()

    draft, target = load_draft(args.draft, device="cpu"), load_target(DEFAULT_TARGET)
    docs, _ = load_corpus()
    words, corpus = word_list(docs["train"]), Corpus(docs["eval"])
    kept = {(chars, n): 0 for chars in map(int, args.chars.split(",")) for n in LOOKAHEADS}
    for chars in sorted({c for c, _ in kept}):
        for text, fact, question in dev_cases(words, corpus, args.cases, chars, SEED + chars):
            for lookahead in LOOKAHEADS:
                result = compress(text, draft=draft, target=target, query=question,
                                  keep_rate=KEEP_RATE, lookahead=lookahead)
                kept[chars, lookahead] += fact in result.text
    totals = {n: sum(v for (_, m), v in kept.items() if m == n) for n in LOOKAHEADS}
    best = max(LOOKAHEADS, key=lambda n: (totals[n], n))
    report = {"keep_rate": KEEP_RATE, "cases_per_length": args.cases,
              "kept": {f"{chars} chars, lookahead {n}": v for (chars, n), v in kept.items()},
              "chosen_lookahead": best}
    print(json.dumps(report, indent=1))
    (Path(args.draft) / DRAFT_DEFAULTS_FILE).write_text(
        "# Scoring defaults of this draft, chosen by scripts/choose_defaults.py on held-out\n"
        f"# development cases: facts kept at {KEEP_RATE:.1%} keep, by lookahead "
        + ", ".join(f"{n}: {totals[n]}" for n in LOOKAHEADS)
        + f" of {len(kept) // len(LOOKAHEADS) * args.cases}.\n"
        f"lookahead: {best}\n")
    if args.out:
        log_path = Path(args.out) / "train_log.json"
        log = json.loads(log_path.read_text())
        log["scoring_defaults_dev"] = report
        log_path.write_text(json.dumps(log, indent=1))


if __name__ == "__main__":
    main()
