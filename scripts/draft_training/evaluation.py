"""Evaluation of a checkpoint, its CPU speed, and the model card that reports both.

The eval measures what crossprefill uses the draft for, on held-out templates, word
pool and files (`build_eval`): `heldout_512` and `heldout_900` (30 recall prompts each
of 512 and 900 tokens with up to 3 and 4 facts) and `ood_probes_900` (the 16
hand-written facts of `OOD_PROBES`, in a style unlike the templates, each at two
depths of a 900-token prompt). `score_row` applies crossprefill's scoring rule:
attention of the last prompt token and 7 greedy lookahead tokens over the context
keys, avg-pool 13, max over layers and heads, mean over the lookahead queries, mean
over 32-token chunks; a row counts when the chunk holding the answer is ranked first
or in the top 12.5% of chunks. The greedy answer's accuracy is recorded too, though
the model is too small to generate the value: what it learns is to attend to it.
`run_eval`'s score, the top-12.5% rate averaged over the sets, picks OUT/best.

`bench_speed` times 32k tokens in 1024-token windows on 2 threads, prefill alone and
prefill plus 8 lookahead steps with attention capture (crossprefill's work per window).
`write_card` writes the model card README.md of a checkpoint from the training log.
"""
from __future__ import annotations

import collections
import math
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .corpus import Corpus
from .facts import FactMaker
from .losses import PROBE, register_probe
from .rows import DataGen

# Hand-written probes in a different style (never used for training): (fact, question, answer)
OOD_PROBES = [
    ("The maintenance window for the mail relay begins at 03:40 every Sunday.",
     "When does the maintenance window for the mail relay begin?", "03:40"),
    ("Our backup tapes are stored in a fireproof safe in building 14.",
     "In which building are the backup tapes stored?", "14"),
    ("The printer on the second floor is called Albatross.",
     "What is the name of the printer on the second floor?", "Albatross"),
    ("Kernel version 6.1.52 fixed the crash in the wireless driver.",
     "Which kernel version fixed the wireless driver crash?", "6.1.52"),
    ("Marta's laptop uses the hostname tulipwood.",
     "What hostname does Marta's laptop use?", "tulipwood"),
    ("For all guest networks the firewall blocks port 8443.",
     "Which port does the firewall block for guest networks?", "8443"),
    ("Last year the annual budget for the library was 72500 euros.",
     "What was the annual budget for the library?", "72500"),
    ("The shared drive of the design department is mounted at /mnt/archive2.",
     "Where is the design department's shared drive mounted?", "/mnt/archive2"),
    ("The weekly call with the Lisbon office takes place on Thursday.",
     "On which day is the weekly call with the Lisbon office?", "Thursday"),
    ("Daniel keeps the spare key of the workshop in a blue ceramic jar.",
     "Where does Daniel keep the workshop's spare key?", "blue"),
    ("The package mirror in Osaka synchronises every 45 minutes.",
     "How often does the Osaka mirror synchronise?", "45"),
    ("The recovery phrase for the old storage box is copper-lantern-9.",
     "What is the recovery phrase for the old storage box?", "copper-lantern-9"),
    ("Hannah's favourite editor, it turns out, is Kakoune.",
     "Which editor does Hannah like best?", "Kakoune"),
    ("The cluster in Frankfurt was upgraded to 512 GB of memory.",
     "How much memory does the Frankfurt cluster have after the upgrade?", "512"),
    ("The default umask on the build machines is 0027.",
     "What umask do the build machines use by default?", "0027"),
    ("Our company was founded in Tromso by Ingrid Halvorsen.",
     "Who founded the company?", "Ingrid"),
]


def build_eval(tok, words, docs_eval: Corpus, code_eval: Corpus, cpt, seed: int):
    """The eval sets: name -> rows, made with the held-out templates and word pool."""
    rng = random.Random(seed + 1)
    fm = FactMaker(words, rng, heldout=True)
    gen = DataGen(tok, docs_eval, code_eval, fm, rng, cpt)
    sets = {}
    for name, L, kmax, n in [("heldout_512", 512, 3, 30), ("heldout_900", 900, 4, 30)]:
        rows = []
        while len(rows) < n:
            r = gen.recall(L, kmax, heldout_len=L)
            if r is not None:
                rows.append(r)
        sets[name] = rows
    rows = []
    gen.rng = random.Random(seed + 2)
    for _ in range(2):
        for pr in OOD_PROBES:
            r = None
            while r is None:
                r = gen.recall(900, 1, heldout_len=900, probe=pr)
            rows.append(r)
    sets["ood_probes_900"] = rows
    return sets


@torch.no_grad()
def score_row(model, row, n_layers, n_look=8, pool=13, chunk=32):
    """Rank the context chunks of an eval row by crossprefill's rule; where the answer lands."""
    ids = torch.tensor([row["ids"]])
    C = row["ctx_len"]
    PROBE["layers"] = tuple(range(n_layers))
    maps, gen_ids = [], []
    past = None
    x = ids
    for _ in range(n_look):
        PROBE["rows"] = (torch.tensor([0]), torch.tensor([x.shape[1] - 1]))
        PROBE["out"] = {}
        out = model(input_ids=x, past_key_values=past, use_cache=True)
        past = out.past_key_values
        P = torch.stack([PROBE["out"][li][0, :, 1:1 + C] for li in range(n_layers)])  # [L,H,C]
        maps.append(P.reshape(-1, C))
        nxt = out.logits[0, -1].argmax().item()
        gen_ids.append(nxt)
        x = torch.tensor([[nxt]])
    PROBE["rows"] = None
    A = torch.stack(maps)                                     # [n_look, LH, C]
    A = F.avg_pool1d(A, pool, stride=1, padding=pool // 2, count_include_pad=False)
    imp = A.max(1).values.mean(0)                             # [C]
    nch = math.ceil(C / chunk)
    cs = torch.stack([imp[i * chunk:(i + 1) * chunk].mean() for i in range(nch)])
    order = torch.argsort(cs, descending=True).tolist()
    rank = {c: i for i, c in enumerate(order)}
    k = max(1, math.ceil(0.125 * nch))
    a_chunk = (row["ans_tok"] - 1) // chunk
    n_chunks = range((row["needle"][0] - 1) // chunk, (row["needle"][1] - 2) // chunk + 1)
    best_needle = min(rank[c] for c in n_chunks)
    return dict(ans_top1=rank[a_chunk] == 0, ans_top12=rank[a_chunk] < k,
                needle_top12=best_needle < k, gen=gen_ids)


def run_eval(model, tok, sets, n_layers):
    """Per set, the rates of `score_row`'s hits and of right greedy answers; and the score."""
    model.eval()
    res = {}
    for name, rows in sets.items():
        agg = collections.Counter()
        for row in rows:
            s = score_row(model, row, n_layers)
            text = tok.decode(s["gen"], skip_special_tokens=True)
            agg["ans_top1"] += s["ans_top1"]
            agg["ans_top12"] += s["ans_top12"]
            agg["needle_top12"] += s["needle_top12"]
            agg["answer_acc"] += row["answer"].strip("'\"") in text
        n = len(rows)
        res[name] = {k: round(v / n, 4) for k, v in agg.items()} | {"n": n}
    res["score"] = round(sum(res[k]["ans_top12"] for k in sets) / len(sets), 4)
    model.train()
    return res


@torch.no_grad()
def bench_speed(model_dir: str, n_tokens=32768, window=1024, n_look=8):
    """Forward speed of the draft on n_tokens split in windows (SDPA prefill, logits_to_keep=1),
    and the same plus n_look lookahead steps whose attention over the window is recorded."""
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(2)
    register_probe()
    m = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(2, m.config.vocab_size, (n_tokens // window, window), generator=g)
    m(input_ids=ids[:1], logits_to_keep=1)                     # warm-up
    t = time.time()
    for w in ids:
        m(input_ids=w[None], logits_to_keep=1)
    prefill = time.time() - t
    m.set_attn_implementation("probe_sdpa")
    PROBE["layers"] = tuple(range(m.config.num_hidden_layers))
    t = time.time()
    for w in ids:
        x, past = w[None], None
        for _ in range(n_look):
            PROBE["rows"] = (torch.tensor([0]), torch.tensor([x.shape[1] - 1]))
            out = m(input_ids=x, past_key_values=past, use_cache=True, logits_to_keep=1)
            past = out.past_key_values
            x = out.logits[:, -1].argmax(-1, keepdim=True)
    PROBE["rows"] = None
    full = time.time() - t
    return {"tokens": n_tokens, "window": window, "threads": 2,
            "prefill_seconds": round(prefill, 2), "prefill_tok_per_s": round(n_tokens / prefill),
            "prefill_plus_lookahead_seconds": round(full, 2),
            "prefill_plus_lookahead_tok_per_s": round(n_tokens / full)}


def write_card(model_dir: Path, log: dict, bench: dict | None):
    """Model card README.md for a saved checkpoint, from the training log."""
    best_step = log.get("best", {}).get("step")
    size = sum(f.stat().st_size for f in model_dir.iterdir() if f.is_file())
    rows = []
    for e in log["evals"]:
        cells = [f"{e['step']}", f"{e['tokens'] / 1e6:.2f}M"]
        for k in ("heldout_512", "heldout_900", "ood_probes_900"):
            cells.append(f"{e[k]['ans_top12']:.2f} / {e[k]['ans_top1']:.2f} / {e[k]['answer_acc']:.2f}")
        rows.append("| " + " | ".join(cells) + " |")
    hist = log["history"][-1] if log["history"] else {}
    extra = ""
    xe = log.get("extra_eval_licence_haystacks", {}).get(f"{best_step:05d}") if best_step is not None else None
    if xe:
        extra = ("\nExtra eval of this checkpoint in prose never seen in training (licence texts from "
                 "/usr/share/common-licenses and Debian READMEs; same cells):\n\n| set | n | cells |\n|---|---|---|\n")
        extra += "\n".join(f"| {k} | {v['n']} | {v['ans_top12']:.2f} / {v['ans_top1']:.2f} / {v['answer_acc']:.2f} |"
                           for k, v in xe.items() if isinstance(v, dict)) + "\n"
    dev = log.get("scoring_defaults_dev")
    defaults = ""
    if dev:
        defaults = (f"\n## Scoring defaults\n`crossprefill.yaml` in this folder says `lookahead: "
                    f"{dev['chosen_lookahead']}`, chosen by `scripts/choose_defaults.py` on development "
                    f"cases (held-out Python-docs passages and fact templates, {dev['cases_per_length']} "
                    f"per length, facts kept at {dev['keep_rate']:.1%} keep): "
                    + "; ".join(f"{k}: {v}" for k, v in dev["kept"].items()) + ".\n")
    m = log["model"]
    speed = ""
    if bench:
        speed = (f"- Speed (2 CPU threads, fp32, {bench['tokens']} tokens in windows of {bench['window']}): "
                 f"prefill {bench['prefill_seconds']} s ({bench['prefill_tok_per_s']} tok/s); prefill + 8 "
                 f"lookahead steps with attention capture {bench['prefill_plus_lookahead_seconds']} s.\n")
    text = f"""---
license: psf-2.0
library_name: transformers
pipeline_tag: text-generation
---
# crossprefill built-in draft model

A tiny causal LM trained by the crossprefill project to *score* which parts of a long
context matter for a question (speculative-prefill style attention scoring). It is not a
chat or general-purpose model; its generations are poor. What it is trained for is
**retrieval attention**: after `...\\n\\nQuestion: <q>\\nAnswer:` some heads attend to the
context sentence that answers the question.

- Architecture: `LlamaForCausalLM` (no custom code), {m['layers']} layers, hidden {m['hidden']},
  {m['heads']} heads x {m['head_dim']}, FFN {m['ffn']}, RoPE, tied embeddings,
  max_position_embeddings {m['max_pos']} (attention beyond 1024 positions is untrained).
- Parameters: {m['params']:,} ({size / 1e6:.1f} MB on disk, fp32 safetensors + tokenizer).
- Tokenizer: byte-level BPE, vocab {log['tokenizer']['vocab']}, `<|bos|>` = {log['tokenizer']['bos']},
  `<|eos|>` = {log['tokenizer']['eos']}. Default encoding prepends `<|bos|>`;
  `add_special_tokens=False` adds nothing. Offsets are character offsets (leading spaces
  belong to the following token).
{speed}
## Data (all PSF-2.0 licensed)
- Python 3.11 standard library sources (`*.py`, without site-packages and test directories).
- The Python 3.11 documentation reST sources from Debian's `python3-doc` package, lightly
  cleaned of reST markup.
- Synthetic "facts in prose" rows generated by `scripts/draft_training/facts.py`: 1-6 short fact
  sentences (subject / attribute / value; also code facts such as `def f(): return v`)
  inserted at random depths of a natural passage, then `\\n\\nQuestion: ...\\nAnswer: <value>`.
  Many fact and question templates; the eval uses held-out templates, words and files.
- Phase D adds rows for scoring long inputs window by window: the asked fact left out of
  the context (another window's job; the target is `<|bos|>`, "no evidence here"),
  answers replaced by filler words (like the draft's own wrong greedy lookahead), and
  questions naming 1-4 functions of a standard-library code passage (some names from
  other files), whose whole definitions are the target.
- Phase E adds event facts (who did what, where and when, asked with who/where/when/what
  questions, so answers are phrases) and more function questions; phase F more function
  questions still, 40% of them naming only functions of other files (target `<|bos|>`:
  most windows of a repository dump hold none of the functions a question names).

## Training
`scripts/train_draft.py` (seed {log['seed']}), CPU only (2 threads), bf16 autocast.
Curriculum: {", ".join(f"{p['name']} (seq {p['seq']}, batch {p['batch']}, {p['steps']} steps)" for p in log['recipe']['phases'])}.
Losses: LM loss on natural text, answer loss, and an auxiliary attention loss that trains
heads 0-1 of layers 1-3 to attend, from the `Answer:` token and the answer (or filler)
tokens, to the fact sentence that answers the question, or to `<|bos|>` when the context
lacks it (plus a small penalty on attention to other context tokens at those positions,
and, for function questions, a term that spreads attention over the whole definitions).
Steps: {log.get('steps', hist.get('step'))}, tokens seen: {log.get('tokens_seen', hist.get('tokens', 0)) / 1e6:.1f}M,
{log.get('train_minutes', hist.get('minutes'))} min of counted training time (plus evals and restarts:
see `resume_note` in `training_log.json` next to this card). Final running losses (last 10 steps): LM {hist.get('lm')},
answer {hist.get('ans')}, attention {hist.get('att')}.
This card describes the checkpoint of step {best_step}.

## Measured quality (held-out templates, words and documents)
Scoring rule as in crossprefill: attention of the last prompt token and 7 greedy lookahead
tokens over the context keys, avg-pool 13, max over layers and heads, mean over the
lookahead queries, 32-token chunks. Cells: chunk holding the answer in the top 12.5% of
chunks / ranked first / greedy answer contains the value.
`ood_probes_900` are 16 hand-written facts in a different style (x2 depths).

| step | tokens | held-out 512 | held-out 900 | hand-written probes 900 |
|---|---|---|---|---|
{chr(10).join(rows)}

Random ranking puts the answer chunk in the top 12.5% about 12.5% of the time.
The greedy answer is almost never right: the model is too small/short-trained to *generate*
the value; what it learned is to *attend* to the right sentence. In misses the fact's
chunk is usually still ranked high but not in the top 12.5%.
{extra}{defaults}
## Limitations
- Retrieval is learned from synthetic facts in Python documentation/code. It transfers to
  other technical prose, but less well to unusual text (legal/licence prose is the worst
  case measured) and it is weaker for facts early in a 1024-token window than late.
- The model does not generate correct answers; only its attention is useful.
- Windows are compared by their raw attention: phase D teaches a window without the
  asked fact to rest on `<|bos|>`. Normalising each window's scores to sum 1 instead
  changed nothing measurable (20 needle cases at 4k tokens), nor did max vs mean over
  heads or the trained heads alone.
- Code questions: questions naming functions of a repository dump find the named
  definitions no more often than chance (crossprefill's `bench/code.py`); the
  function-question rows of phases D-F did not change that measurably.
- Nothing beyond 1024 positions was trained.

## Licence
Trained from scratch by the crossprefill project (MIT). The training text is PSF-2.0
licensed (Python standard library and documentation); the weights and tokenizer are
derived from it and are distributed under PSF-2.0 terms, like the data they come from.
"""
    (model_dir / "README.md").write_text(text)
