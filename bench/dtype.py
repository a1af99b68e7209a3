"""float32 or bfloat16 for the draft on this CPU: speed, and whether the ranking holds.

On needle cases (bench.needle's maker), the same draft is loaded in both dtypes and
scores every case in each (timed in-process after one warm-up call, so model loading
and imports do not blur the comparison). Agreement is the overlap of the top 12.5% of
chunks (the keep rate that matters most) and the rank correlation of chunk scores.

    python -m bench.dtype --draft builtin --tokens 8000 --cases 6
"""

import argparse
import random
import time

import numpy as np

from crossprefill_cli import compress
from crossprefill_cli.models.draft import load_draft

from .needle import make_case
from .targets import bench_target


def ranks(values: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(values)).astype(np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draft", default="builtin")
    parser.add_argument("--tokens", type=int, default=8000)
    parser.add_argument("--cases", type=int, default=6)
    args = parser.parse_args()
    drafts = {name: load_draft(args.draft, device="cpu", dtype=name)
              for name in ("float32", "bfloat16")}
    target = bench_target(drafts["float32"])
    rng = random.Random("dtype")
    cases = [make_case(rng, args.tokens, target.count) for _ in range(args.cases)]
    seconds = {name: 0.0 for name in drafts}
    kept = {name: 0 for name in drafts}
    overlaps, correlations = [], []
    for name, draft in drafts.items():
        compress(cases[0].text[:4000], draft=draft, target=target)  # warm-up
    for case in cases:
        chunk_scores = {}
        for name, draft in drafts.items():
            started = time.perf_counter()
            # attention alone: the draft's numbers, not the lexical signal both dtypes share
            result = compress(case.text, draft=draft, target=target, query=case.query,
                              keep_rate=0.125, scorer="attention")
            seconds[name] += time.perf_counter() - started
            kept[name] += case.needle in result.text
            chunk_scores[name] = np.array([c.score for c in result.chunks if not c.required])
        a, b = chunk_scores["float32"], chunk_scores["bfloat16"]
        top = max(1, len(a) // 8)
        overlaps.append(len(set(np.argsort(-a)[:top]) & set(np.argsort(-b)[:top])) / top)
        correlations.append(np.corrcoef(ranks(a), ranks(b))[0, 1])
    print(f"| dtype | seconds per {args.tokens:,}-token case | needle kept at 0.125 |")
    print("|---|---:|---:|")
    for name in drafts:
        print(f"| {name} | {seconds[name] / len(cases):.2f} | {kept[name]}/{len(cases)} |")
    print(f"\ntop-12.5% chunk overlap {np.mean(overlaps):.3f}, "
          f"rank correlation {np.mean(correlations):.4f} (mean of {len(cases)} cases)")


if __name__ == "__main__":
    main()
