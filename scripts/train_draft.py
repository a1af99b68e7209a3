#!/usr/bin/env python
"""Train the small bundled draft model of crossprefill (tokenizer + Llama LM).

Reproducible recipe (CPU, 2 threads, fixed seeds):

    /work/venv/bin/python scripts/train_draft.py --out /work/draftbuild        # full run
    /work/venv/bin/python scripts/train_draft.py --out /tmp/t --smoke          # 3 steps a phase

Stages, one module of draft_training/ each:
  1. corpus (corpus.py): Python 3.11 standard library sources (no site-packages, no
     test/) and the Python documentation reST sources shipped by Debian's python3-doc
     package (/usr/share/doc/python3.11/html/_sources). Both are under the PSF licence.
     ~5% of files (by a hash of the path) are held out for evaluation.
  2. tokenizer (corpus.py): byte-level BPE, vocab 8192, specials <|bos|> (id 0) and
     <|eos|> (id 1).
  3. model (loop.py): LlamaForCausalLM, 4 layers, hidden 256, 8 heads x 32, FFN 688,
     tied embeddings, max_position_embeddings 1024.
  4. training curriculum (curriculum.py, PHASES): natural text LM + synthetic "fact
     recall in prose" rows (facts.py, rows.py: facts inserted at random depths of a
     natural passage, followed by "\\n\\nQuestion: ...\\nAnswer: <value>"), at sequence
     length 256 -> 512 -> 1024, then phases D-F fine-tuned for scoring a long input
     window by window.
     Losses (losses.py): LM loss on natural text (random 35% of positions, for speed),
     answer loss on the answer tokens, and an auxiliary *retrieval-attention* loss: for
     the "Answer:" token and the answer tokens, designated heads (layers 1-3, heads 0-1)
     are trained to put their attention mass on the tokens of the fact being asked
     about, and all heads are mildly discouraged from putting mass on other context
     tokens.
  5. eval at every checkpoint (~10 min, evaluation.py): held-out templates / words /
     text; greedy answer accuracy and the crossprefill scoring rule (attention of the
     last prompt token and 7 greedy lookahead tokens over the context keys, avg-pool 13,
     max over layers & heads, mean over lookahead, 32-token chunks) -> how often the
     fact's chunk is top-1 / in the top 12.5% of chunks. Best checkpoint by that number
     is kept in OUT/best.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from draft_training.evaluation import bench_speed, write_card
from draft_training.loop import train


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/work/draftbuild")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--ckpt-minutes", type=float, default=10.0)
    ap.add_argument("--max-minutes", type=float, default=1e9, help="safety stop (then final eval+save)")
    ap.add_argument("--steps-scale", type=float, default=1.0, help="multiply PHASES step counts")
    ap.add_argument("--phase-steps", default=None,
                    help="comma list overriding the step count of each phase, e.g. 250,210,890,600,900,600")
    ap.add_argument("--decay-frac", type=float, default=0.5,
                    help="linear LR decay to 10%% over this final fraction of the steps")
    ap.add_argument("--resume", default=None, help="OUT/last_state.pt: continue from that step")
    ap.add_argument("--bench", default=None, help="only measure CPU speed of a saved model dir")
    ap.add_argument("--card", default=None, help="write README.md model card into this model dir")
    args = ap.parse_args()
    if args.card:
        lg = json.loads((Path(args.out) / "train_log.json").read_text())
        b = bench_speed(args.card)
        lg["speed_32k"] = b
        (Path(args.out) / "train_log.json").write_text(json.dumps(lg, indent=1))
        write_card(Path(args.card), lg, b)
        print(json.dumps(b))
        return
    if args.bench:
        print(json.dumps(bench_speed(args.bench)))
        return
    train(args)


if __name__ == "__main__":
    main()
