#!/usr/bin/env python
"""Train the small bundled draft model of crossprefill (tokenizer + Llama LM).

Reproducible recipe (CPU, 2 threads, fixed seeds):

    /work/venv/bin/python scripts/train_draft.py --out /work/draftbuild        # full run
    /work/venv/bin/python scripts/train_draft.py --out /tmp/t --smoke          # 10-step check

Stages
  1. corpus: Python 3.11 standard library sources (no site-packages, no test/) and the
     Python documentation reST sources shipped by Debian's python3-doc package
     (/usr/share/doc/python3.11/html/_sources). Both are under the PSF licence.
     ~5% of files (by a hash of the path) are held out for evaluation.
  2. tokenizer: byte-level BPE, vocab 8192, specials <|bos|> (id 0) and <|eos|> (id 1).
  3. model: LlamaForCausalLM, 4 layers, hidden 256, 8 heads x 32, FFN 688, tied embeddings,
     max_position_embeddings 1024.
  4. training curriculum (see PHASES): natural text LM + synthetic "fact recall in prose"
     rows (facts inserted at random depths of a natural passage, followed by
     "\\n\\nQuestion: ...\\nAnswer: <value>"), at sequence length 256 -> 512 -> 1024.
     Losses: LM loss on natural text (random 35% of positions, for speed), answer loss on
     the answer tokens, and an auxiliary *retrieval-attention* loss: for the "Answer:"
     token and the answer tokens, designated heads (layers 1-3, heads 0-1) are trained to
     put their attention mass on the tokens of the fact being asked about, and all heads
     are mildly discouraged from putting mass on other context tokens.
  5. eval at every checkpoint (~10 min): held-out templates / words / text; greedy answer
     accuracy and the crossprefill scoring rule (attention of the last prompt token and 7
     greedy lookahead tokens over the context keys, avg-pool 13, max over layers & heads,
     mean over lookahead, 32-token chunks) -> how often the fact's chunk is top-1 / in the
     top 12.5% of chunks. Best checkpoint by that number is kept in OUT/best.
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import json
import math
import os
import random
import re
import shutil
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from draft_facts import (FILLER_WORDS, FUNCTION_QUESTION_TRAIN, OOD_PROBES,  # noqa: E402
                         QUERY_TEMPLATE, FactMaker)

STDLIB = Path("/root/.pyenv/versions/3.11.7/lib/python3.11")
DOCS = Path("/usr/share/doc/python3.11/html/_sources")
SEED = 20261122

# (name, seq_len, batch, steps, recall_fraction, max_facts, mix)
# mix "facts": recall rows are facts in prose/code, continued by their answer.
# mix "windows": what scoring a long input window by window needs (phase D):
#   - rows whose context lacks the asked fact (another window of the input), where the
#     retrieval heads learn to rest on <|bos|> ("no evidence here") instead of peaking on
#     some context token, so that attention is comparable across windows;
#   - answers replaced by filler tokens, like the draft's own wrong greedy lookahead;
#   - rows asking about named functions of a code passage, whose whole body is the target.
# mix "events" (phase E): the same, with more named-function rows (code dumps were the
# weakest case after phase D) and facts that are events (who did what where and when)
# asked with who/where/when/what questions, so answers are phrases, not only values.
# mix "code" (phase F): more named-function rows still, 40% of them naming only functions
# that are not in the passage (target <|bos|>): in a windowed dump most windows hold none
# of the named functions, and their def lines must not outscore the window that does.
PHASES = [
    ("A_256", 256, 32, 250, 0.75, 4, "facts"),
    ("B_512", 512, 16, 210, 0.65, 5, "facts"),
    ("C_1024", 1024, 8, 890, 0.55, 6, "facts"),
    ("D_1024", 1024, 8, 600, 0.7, 6, "windows"),
    ("E_1024", 1024, 8, 900, 0.75, 6, "events"),
    ("F_1024", 1024, 8, 600, 0.75, 6, "code"),
]
# each fine-tune phase (D, E, F) starts from the annealed end of the one before and has its
# own short schedule: warm-up, then linear decay to a tenth
FINETUNE_LR, FINETUNE_WARMUP = 6e-4, 20
# row kinds among the recall rows of the fine-tune mixes: named functions; else a fact
# row whose fact is absent / continued by filler / an event (who, where, when, what)
MIXES = {"windows": {"functions": 0.3, "functions_absent": 0.0, "absent": 0.25, "filler": 0.5,
                     "events": 0.0},
         "events": {"functions": 0.5, "functions_absent": 0.0, "absent": 0.25, "filler": 0.5,
                    "events": 0.5},
         "code": {"functions": 0.6, "functions_absent": 0.4, "absent": 0.25, "filler": 0.5,
                  "events": 0.5}}
W_COVER = 0.2
RETRIEVAL_LAYERS = (1, 2, 3)
RETRIEVAL_HEADS = (0, 1)
W_ANS, W_ATT, W_NEG = 1.0, 0.5, 0.2
LM_FRACTION = 0.35


# ----------------------------------------------------------------------------- corpus
def clean_rst(t: str) -> str:
    t = re.sub(r":[a-zA-Z:]+:`!?~?([^`<]*?)(?:\s*<[^>`]*>)?`", r"\1", t)
    t = re.sub(r"``([^`]*)``", r"\1", t)
    t = re.sub(r"`([^`<]*?)(?:\s*<[^>`]*>)?`_+", r"\1", t)
    t = re.sub(r"^\s*([=\-~^*#+\"'`]{3,})\s*$\n?", "", t, flags=re.M)
    t = re.sub(r"^\.\. _[^\n]*:\s*\n", "", t, flags=re.M)
    t = re.sub(r"\n{3,}", "\n\n", t)
    return t


def is_heldout(path: str) -> bool:
    return int(hashlib.md5(path.encode()).hexdigest(), 16) % 20 == 0


def load_corpus():
    docs, code = {"train": [], "eval": []}, {"train": [], "eval": []}
    for p in sorted(DOCS.rglob("*.rst.txt")):
        rel = str(p.relative_to(DOCS))
        if "changelog" in rel:
            continue
        t = clean_rst(p.read_text(errors="replace"))
        if len(t) > 2000:
            docs["eval" if is_heldout(rel) else "train"].append(t)
    for p in sorted(STDLIB.rglob("*.py")):
        rel = str(p.relative_to(STDLIB))
        parts = rel.split("/")
        if "site-packages" in parts or any(x in ("test", "tests", "idle_test") for x in parts):
            continue
        try:
            t = p.read_text()
        except UnicodeDecodeError:
            continue
        if len(t) > 2000:
            code["eval" if is_heldout(rel) else "train"].append(t)
    return docs, code


def word_list(texts, n_skip=150, n_take=6000):
    c = collections.Counter()
    for t in texts:
        c.update(w for w in re.findall(r"\b[a-z]{4,11}\b", t))
    common = [w for w, k in c.most_common() if k >= 5]
    return sorted(common[n_skip:n_skip + n_take])


# ----------------------------------------------------------------------------- tokenizer
def train_tokenizer(docs, code, out_dir: Path, vocab=8192):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, min_frequency=2, show_progress=False,
                                  special_tokens=["<|bos|>", "<|eos|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(docs["train"] + code["train"], trainer)
    bos = tok.token_to_id("<|bos|>")
    # add_special_tokens=True prepends <|bos|>; add_special_tokens=False adds nothing.
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|bos|> $A", pair="<|bos|> $A $B:1",
                                      special_tokens=[("<|bos|>", bos)]),
    ])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|bos|>", eos_token="<|eos|>",
                                   pad_token="<|eos|>", model_max_length=1024)
    fast.save_pretrained(out_dir)
    return fast


# ----------------------------------------------------------------------------- probe attention
PROBE = {"rows": None, "layers": (), "out": {}}


def probe_sdpa(module, query, key, value, attention_mask, **kwargs):
    """SDPA attention that additionally records softmax(qK^T*scale) for selected query rows."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    out = sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    li = module.layer_idx
    if PROBE["rows"] is not None and li in PROBE["layers"]:
        b, t = PROBE["rows"]
        with torch.autocast("cpu", enabled=False):
            q = query[b, :, t].float()                       # [N, H, D]
            k = key[b].float()                               # [N, Hkv, S, D]
            if k.shape[1] != q.shape[1]:
                k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
            s = torch.einsum("nhd,nhsd->nhs", q, k) * module.scaling
            off = k.shape[2] - query.shape[2]
            mask = torch.arange(k.shape[2])[None, :] > (t + off)[:, None]
            s = s.masked_fill(mask[:, None, :], float("-inf"))
            PROBE["out"][li] = s.softmax(-1)
    return out


def register_probe():
    from transformers import AttentionInterface
    AttentionInterface.register("probe_sdpa", probe_sdpa)
    try:
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
        AttentionMaskInterface.register("probe_sdpa", sdpa_mask)
    except Exception:  # pragma: no cover
        pass


# ----------------------------------------------------------------------------- data
class Corpus:
    def __init__(self, texts):
        self.texts = texts
        self.cum = []
        s = 0
        for t in texts:
            s += len(t)
            self.cum.append(s)

    def passage(self, rng: random.Random, nchars: int) -> str:
        import bisect
        x = rng.randrange(self.cum[-1])
        i = bisect.bisect_right(self.cum, x)
        t = self.texts[i]
        start = rng.randrange(max(1, len(t) - nchars // 2))
        nl = t.find("\n", start)
        start = nl + 1 if 0 <= nl < start + 400 else start
        p = t[start:start + nchars]
        while len(p) < nchars:                      # short file: continue with another one
            t = self.texts[rng.randrange(len(self.texts))]
            p += "\n\n" + t[: nchars - len(p)]
        return p


class DataGen:
    def __init__(self, tok, docs: Corpus, code: Corpus, facts: FactMaker, rng: random.Random,
                 chars_per_token: float):
        self.tok, self.docs, self.code, self.fm, self.rng = tok, docs, code, facts, rng
        self.cpt = chars_per_token
        self.bos, self.eos = tok.bos_token_id, tok.eos_token_id

    def enc(self, s, offsets=False):
        e = self.tok(s, add_special_tokens=False, return_offsets_mapping=offsets)
        return (e["input_ids"], e["offset_mapping"]) if offsets else e["input_ids"]

    def natural(self, T):
        src = self.docs if self.rng.random() < 0.55 else self.code
        ids = self.enc(src.passage(self.rng, int(T * self.cpt * 1.3)))[: T - 1]
        ids = [self.bos] + ids
        return dict(ids=ids, lm_end=len(ids))

    def filler(self, passage: str) -> list[int]:
        """A few tokens of plausible but uninformed continuation (words of the passage
        and common words), standing in for the draft's own greedy lookahead."""
        r = self.rng
        pool = re.findall(r"\w+", passage[:2000]) or FILLER_WORDS
        words = [r.choice(pool) if r.random() < 0.4 else r.choice(FILLER_WORDS)
                 for _ in range(r.randint(3, 8))]
        return self.enc(" " + " ".join(words))[:8]

    def continued(self, row, ans_ids, filler_from=None):
        """Append the continuation after the prompt: the answer (answer loss) or filler."""
        if filler_from is not None:
            row["ids"] = row["ids"] + self.filler(filler_from)
            row["cont_len"] = len(row["ids"]) - row["last"]
        else:
            row["ids"] = row["ids"] + ans_ids + [self.eos]
            row["ans_ids"] = ans_ids
            row["cont_len"] = len(ans_ids)
        return row

    def recall(self, T, kmax, heldout_len=None, probe=None, absent=False, filler=False, events=False):
        """One row: [BOS] context(with facts) question answer [EOS].

        probe: optional (fact, question, answer) used instead of synthetic facts (eval).
        heldout_len: if given, total prompt length target (eval); no answer appended.
        absent: the asked fact is left out of the context; the target is <|bos|>.
        filler: continue with filler tokens instead of the answer.
        events: the facts are events (who did what where and when) instead of attributes.
        """
        r = self.rng
        k = 1 if (r.random() < 0.35 or kmax == 1) else r.randint(2, kmax)
        use_code_ctx = r.random() < 0.25
        src = self.code if use_code_ctx else self.docs
        if probe is not None:
            facts, q, ans, tgt = [probe[0]], probe[1], probe[2], 0
            code_facts = False
        else:
            code_facts = r.random() < (0.5 if use_code_ctx else 0.15)
            code_facts = code_facts and not events
            facts, q, ans, tgt = (self.fm.code_set(k) if code_facts else
                                  self.fm.event_set(k) if events else self.fm.prose_set(k))
            if absent:
                facts = facts[:tgt] + facts[tgt + 1:]
        q_ids = self.enc(QUERY_TEMPLATE.format(query=q))
        a_ids = self.enc(" " + ans)
        total = heldout_len or T
        C = total - 1 - len(q_ids) - (0 if heldout_len else len(a_ids) + 1)
        fact_tok = sum(len(self.enc(" " + f)) + 2 for f in facts)
        budget = C - fact_tok - 4
        if budget < 16:
            return None
        passage = src.passage(r, int(budget * self.cpt * 1.3) + 50)
        pids, poffs = self.enc(passage, offsets=True)
        if len(pids) > budget:
            passage = passage[: poffs[budget][0]]
        # insertion points: line starts and sentence ends
        cands = [m.end() for m in re.finditer(r"\n|(?<=[.!?]) ", passage)]
        if code_facts:
            cands = [m.end() for m in re.finditer(r"\n", passage)] or [len(passage)]
        cands = [0] + cands + [len(passage)]
        if absent:
            ctx = self.insert(passage, facts, cands, code_facts)[0]
            cids = self.enc(ctx)
            if len(cids) > C:
                return None
            row = dict(ids=[self.bos] + cids + q_ids, ctx_len=len(cids), targets=[(0, 1)])
            row["last"] = row["lm_end"] = len(row["ids"]) - 1
            return self.continued(row, None, filler_from=passage)
        ctx, spans = self.insert(passage, facts, cands, code_facts)
        cids, coffs = self.enc(ctx, offsets=True)
        if len(cids) > C:
            return None
        ts, te = spans[tgt]
        fact_text = ctx[ts:te]
        ai = fact_text.rfind(ans.strip("'\""))
        a_char = ts + (ai if ai >= 0 else 0)
        ntok = [i for i, (a, b) in enumerate(coffs) if b > ts and a < te]
        atok = [i for i, (a, b) in enumerate(coffs) if b > a_char and a <= a_char]
        if not ntok:
            return None
        ids = [self.bos] + cids + q_ids
        row = dict(ids=ids, ctx_len=len(cids), needle=(1 + ntok[0], 1 + ntok[-1] + 1),
                   ans_tok=1 + (atok[0] if atok else ntok[0]), last=len(ids) - 1,
                   answer=ans, lm_end=len(ids))
        row["targets"] = [row["needle"]]
        if heldout_len:
            return row
        return self.continued(row, a_ids, filler_from=passage if filler else None)

    def insert(self, passage, facts, cands, code_facts):
        """Insert fact sentences at random candidate points; returns (text, char spans)."""
        r = self.rng
        pos = sorted(r.choice(cands) for _ in facts)
        pieces, spans, last = [], [], 0
        cur = 0
        for p, f in zip(pos, facts):
            pieces.append(passage[last:p])
            cur += p - last
            line_start = p == 0 or passage[p - 1] == "\n"
            pre = "" if line_start else " "
            post = "" if f.endswith("\n") else ("\n" if line_start else " ")
            if code_facts and not line_start:
                pre = "\n"
            s = pre + f + post
            spans.append((cur + len(pre), cur + len(pre) + len(f.rstrip("\n"))))
            pieces.append(s)
            cur += len(s)
            last = p
        pieces.append(passage[last:])
        return "".join(pieces), spans

    def functions(self, T, absent=False):
        """One row asking about 1-4 functions named in the question; the target is every
        token of the named functions that are in the context (<|bos|> if none is).
        absent: name only functions of another passage."""
        r = self.rng
        q_budget = 80
        passage = self.code.passage(r, int((T - q_budget) * self.cpt * 1.1))
        ids, offs = self.enc(passage, offsets=True)
        if len(ids) > T - q_budget:
            passage = passage[: offs[T - q_budget][0]]
        defs = list(re.finditer(r"^([ \t]*)(?:async[ \t]+)?def[ \t]+(\w+)[ \t]*\(", passage, re.M))
        present = {m.group(2) for m in defs}
        k = r.randint(1, 4)
        names = r.sample(sorted(present), min(k, len(present))) if present and not absent else []
        n_absent = k - len(names) if (absent or r.random() < 0.6) else 0
        foreign = re.findall(r"^[ \t]*def[ \t]+(\w+)", self.code.passage(r, 20000), re.M)
        names += [n for n in r.sample(foreign, min(n_absent, len(foreign))) if n not in present]
        if not names:
            return None
        r.shuffle(names)
        style = r.choice(["{}", "`{}`", "{}()", "`{}()`"])
        shown = [style.format(n) for n in names]
        listed = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + r.choice([", ", " and "]) + shown[-1]
        q_ids = self.enc(QUERY_TEMPLATE.format(query=r.choice(FUNCTION_QUESTION_TRAIN).format(names=listed)))
        spans = []
        for m in defs:
            if m.group(2) not in names:
                continue
            indent = len(m.group(1).expandtabs())
            end = passage.find("\n", m.end())
            end = len(passage) if end < 0 else end + 1
            lines = 1
            while end < len(passage) and lines < 60:
                nxt = passage.find("\n", end)
                line = passage[end:len(passage) if nxt < 0 else nxt + 1]
                if line.strip() and len(line) - len(line.lstrip()) <= indent:
                    break
                end, lines = end + len(line), lines + 1
            spans.append((m.start(), end))
        cids, coffs = self.enc(passage, offsets=True)
        targets = []
        for cs, ce in spans:
            toks = [i for i, (a, b) in enumerate(coffs) if b > cs and a < ce]
            if toks:
                targets.append((1 + toks[0], 1 + toks[-1] + 1))
        row = dict(ids=[self.bos] + cids + q_ids, ctx_len=len(cids),
                   targets=targets or [(0, 1)], cover=bool(targets))
        row["last"] = len(row["ids"]) - 1
        row["lm_end"] = 1 + len(cids)
        return self.continued(row, None, filler_from=" ".join(names) + " " + passage)


def recall_row(gen: DataGen, T, kmax, mix):
    if mix == "facts":
        return gen.recall(T, kmax)
    p = MIXES[mix]

    def chance(kind):  # a kind a mix leaves out draws nothing: earlier phases' data stays
        return p[kind] > 0 and gen.rng.random() < p[kind]
    if chance("functions"):
        return gen.functions(T, absent=chance("functions_absent"))
    return gen.recall(T, kmax, absent=chance("absent"), filler=chance("filler"),
                      events=chance("events"))


def make_batch(gen: DataGen, T, B, p_rec, kmax, mix="facts"):
    rows = []
    while len(rows) < B:
        row = recall_row(gen, T, kmax, mix) if gen.rng.random() < p_rec else gen.natural(T)
        if row is not None:
            rows.append(row)
    ids = torch.full((B, T), gen.eos, dtype=torch.long)
    lm_b, lm_t, an_b, an_t, an_y, pr_b, pr_t, pr_cover, pr_targets = ([] for _ in range(9))
    for b, row in enumerate(rows):
        x = row["ids"][:T]
        ids[b, : len(x)] = torch.tensor(x)
        n_lm = row["lm_end"] - 1          # positions predicting a next token inside the text
        for t in range(n_lm):
            if gen.rng.random() < LM_FRACTION:
                lm_b.append(b)
                lm_t.append(t)
        if "ans_ids" in row:
            for j, y in enumerate(row["ans_ids"] + [gen.eos]):
                an_b.append(b)
                an_t.append(row["last"] + j)
                an_y.append(y)
        # retrieval attention from the last prompt token and the continuation tokens
        for j in range(min(row.get("cont_len", 0), 8)):
            if row["last"] + j < T:
                pr_b.append(b)
                pr_t.append(row["last"] + j)
                pr_cover.append(row.get("cover", False))
                pr_targets.append(row["targets"])
    target = torch.zeros((len(pr_b), T), dtype=torch.bool)
    for i, spans in enumerate(pr_targets):
        for start, stop in spans:
            target[i, start:stop] = True
    T_ = torch.tensor
    return dict(ids=ids, lm=(T_(lm_b), T_(lm_t)), ans=(T_(an_b), T_(an_t), T_(an_y)),
                probe=(T_(pr_b, dtype=torch.long), T_(pr_t, dtype=torch.long), target,
                       T_(pr_cover, dtype=torch.bool)),
                ctx_end=T_([r.get("ctx_len", 0) + 1 for r in rows]))


def loss_fn(model, batch, n_layers):
    ids = batch["ids"]
    pb, pt, target, cover = batch["probe"]
    if len(pb):
        PROBE["rows"] = (pb, pt)
        PROBE["layers"] = tuple(range(n_layers))
        PROBE["out"] = {}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = model.model(input_ids=ids).last_hidden_state
    PROBE["rows"] = None
    emb = model.lm_head
    lb, lt = batch["lm"]
    logits = emb(h[lb, lt].float())
    lm = F.cross_entropy(logits, ids[lb, lt + 1])
    ab, at, ay = batch["ans"]
    zero = h.new_zeros(()).float()
    ans = F.cross_entropy(emb(h[ab, at].float()), ay) if len(ab) else zero
    att = neg = cov = zero
    if len(pb):
        S = ids.shape[1]
        ar = torch.arange(S)[None, :]
        ctx_end = batch["ctx_end"][pb]
        other_ctx = (ar >= 1) & (ar < ctx_end[:, None]) & ~target
        att_terms, neg_terms, cov_terms = [], [], []
        for li in range(n_layers):
            P = PROBE["out"][li]                                          # [N, H, S]
            if li in RETRIEVAL_LAYERS:
                heads = P[:, list(RETRIEVAL_HEADS)]
                mass = (heads * target[:, None, :]).sum(-1)               # [N, h]
                att_terms.append(mass)
                if cover.any():
                    # KL(uniform over the target || attention renormalised on the target)
                    q = heads[cover] / mass[cover][..., None].clamp_min(1e-9)
                    t = target[cover][:, None, :].float()
                    n = t.sum(-1)
                    cov_terms.append(-((torch.log(q * n[..., None] + 1e-6) * t).sum(-1) / n))
            neg_terms.append((P * other_ctx[:, None, :]).sum(-1))
        m = torch.cat(att_terms, 1).mean(1)
        att = -torch.log(m + 1e-6).mean()
        neg = torch.cat(neg_terms, 1).mean()
        if cov_terms:
            cov = torch.cat(cov_terms, 1).mean()
        PROBE["out"] = {}
    total = lm + W_ANS * ans + W_ATT * att + W_NEG * neg + W_COVER * cov
    return total, dict(lm=lm.item(), ans=ans.item(), att=att.item(), neg=neg.item(), cov=cov.item())


# ----------------------------------------------------------------------------- eval
def build_eval(tok, words, docs_eval: Corpus, code_eval: Corpus, cpt):
    rng = random.Random(SEED + 1)
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
    gen.rng = random.Random(SEED + 2)
    for rep in range(2):
        for pr in OOD_PROBES:
            r = None
            while r is None:
                r = gen.recall(900, 1, heldout_len=900, probe=pr)
            rows.append(r)
    sets["ood_probes_900"] = rows
    return sets


@torch.no_grad()
def score_row(model, row, n_layers, n_look=8, pool=13, chunk=32):
    ids = torch.tensor([row["ids"]])
    C = row["ctx_len"]
    PROBE["layers"] = tuple(range(n_layers))
    maps, gen_ids = [], []
    past = None
    x = ids
    for step in range(n_look):
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


# ----------------------------------------------------------------------------- main
def save_model(model, cfg, tok, d: Path):
    from transformers import GenerationConfig, LlamaForCausalLM
    d.mkdir(parents=True, exist_ok=True)
    clean = LlamaForCausalLM(cfg)
    clean.load_state_dict(model.state_dict())
    clean.generation_config = GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                               pad_token_id=tok.eos_token_id, do_sample=False,
                                               max_new_tokens=8)
    clean.save_pretrained(d, safe_serialization=True)
    tok.save_pretrained(d)


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


def write_card(model_dir: Path, log: dict, bench: dict | None, limits: str = ""):
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
- Synthetic "facts in prose" rows generated by `scripts/draft_facts.py`: 1-6 short fact
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
{limits}
## Licence
Trained from scratch by the crossprefill project (MIT). The training text is PSF-2.0
licensed (Python standard library and documentation); the weights and tokenizer are
derived from it and are distributed under PSF-2.0 terms, like the data they come from.
"""
    (model_dir / "README.md").write_text(text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/work/draftbuild")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--ckpt-minutes", type=float, default=10.0)
    ap.add_argument("--max-minutes", type=float, default=1e9, help="safety stop (then final eval+save)")
    ap.add_argument("--steps-scale", type=float, default=1.0, help="multiply PHASES step counts")
    ap.add_argument("--phase-steps", default=None,
                    help="comma list overriding the step count of each phase, e.g. 250,400,1100")
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

    torch.set_num_threads(2)
    random.seed(SEED)
    torch.manual_seed(SEED)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "train_log.json"
    # a resumed run continues the log of the interrupted one (read before it is rewritten)
    old_log = json.loads(log_path.read_text()) if (args.resume and log_path.exists()) else {}
    t0 = time.time()
    log = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "seed": SEED, "status": "preparing",
           "history": [], "evals": []}

    def write_log():
        tmp = log_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(log, indent=1))
        os.replace(tmp, log_path)

    docs, code = load_corpus()
    log["data"] = {
        "sources": {"python_stdlib": f"{STDLIB} (*.py, excluding site-packages and test dirs), PSF-2.0",
                    "python_docs": f"{DOCS} (Debian python3-doc reST sources, cleaned), PSF-2.0"},
        "files": {"docs_train": len(docs["train"]), "docs_eval": len(docs["eval"]),
                  "code_train": len(code["train"]), "code_eval": len(code["eval"])},
        "chars": {"docs_train": sum(map(len, docs["train"])), "code_train": sum(map(len, code["train"]))},
    }
    write_log()

    tok_dir = out / "tokenizer"
    if (tok_dir / "tokenizer.json").exists():
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(tok_dir)
    else:
        tok = train_tokenizer(docs, code, tok_dir)
    sample = "".join(docs["train"][:40])[:400000]
    cpt = len(sample) / len(tok(sample, add_special_tokens=False)["input_ids"])
    log["tokenizer"] = {"vocab": len(tok), "bos": tok.bos_token_id, "eos": tok.eos_token_id,
                        "docs_chars_per_token": round(cpt, 3)}
    words = word_list(docs["train"])
    log["data"]["word_pool"] = len(words)

    from transformers import LlamaConfig, LlamaForCausalLM
    register_probe()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                      num_attention_heads=8, num_key_value_heads=8, head_dim=32,
                      max_position_embeddings=1024, tie_word_embeddings=True,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.eos_token_id, initializer_range=0.02)
    model = LlamaForCausalLM(cfg)
    model.set_attn_implementation("probe_sdpa")
    nparam = sum(p.numel() for p in model.parameters())
    log["model"] = {"arch": "LlamaForCausalLM", "params": nparam, "layers": 4, "hidden": 256, "heads": 8,
                    "head_dim": 32, "ffn": 688, "max_pos": 1024, "tied": True}
    phases = [(n, T, B, max(1, int(s * args.steps_scale)), p, k, m) for n, T, B, s, p, k, m in PHASES]
    if args.phase_steps:
        ov = [int(x) for x in args.phase_steps.split(",")]
        phases = [(n, T, B, ov[i], p, k, m) for i, (n, T, B, s, p, k, m) in enumerate(phases)]
    if args.smoke:
        phases = [(n, T, 4, 3, p, k, m) for n, T, B, s, p, k, m in PHASES]
    main_steps = sum(p[3] for p in phases if p[6] == "facts")
    log["recipe"] = {"phases": [dict(zip(["name", "seq", "batch", "steps", "recall_frac", "max_facts", "mix"], p))
                                for p in phases],
                     "optimizer": "AdamW lr 2e-3 betas (0.9,0.95) wd 0.1, warmup 100, constant, linear decay "
                                  f"to 10% over the last {args.decay_frac:.0%} of the 'facts' steps, clip 1.0, "
                                  f"bf16 autocast; each fine-tune phase: lr {FINETUNE_LR}, warmup {FINETUNE_WARMUP}, "
                                  "linear decay to 10%",
                     "loss": {"lm_fraction": LM_FRACTION, "w_ans": W_ANS, "w_att": W_ATT, "w_neg": W_NEG,
                              "w_cover": W_COVER, "retrieval_layers": RETRIEVAL_LAYERS,
                              "retrieval_heads": RETRIEVAL_HEADS,
                              "fine_tune_mixes": MIXES}}

    eval_sets = build_eval(tok, words, Corpus(docs["eval"]), Corpus(code["eval"]), cpt)
    if args.smoke:
        eval_sets = {k: v[:3] for k, v in eval_sets.items()}
    log["eval_sets"] = {k: len(v) for k, v in eval_sets.items()}

    rng = random.Random(SEED)
    gen = DataGen(tok, Corpus(docs["train"]), Corpus(code["train"]), FactMaker(words, rng), rng, cpt)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    nodecay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": nodecay, "weight_decay": 0.0}],
                            lr=2e-3, betas=(0.9, 0.95), eps=1e-8)

    def lr_at(step):
        if step >= main_steps:
            start = main_steps
            for p in (p for p in phases if p[6] != "facts"):
                if step < start + p[3]:
                    break
                start += p[3]
            done, length = step - start, p[3]
            if done < FINETUNE_WARMUP:
                return FINETUNE_LR * (done + 1) / FINETUNE_WARMUP
            return FINETUNE_LR * (1 - 0.9 * done / length)
        if step < 100:
            return 2e-3 * (step + 1) / 100
        d0 = int(main_steps * (1 - args.decay_frac))
        if step < d0:
            return 2e-3
        return 2e-3 * (1 - 0.9 * (step - d0) / max(1, main_steps - d0))

    step, tokens = 0, 0
    best = -1.0
    min_off = 0.0
    if args.resume:
        st = torch.load(args.resume, weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step = st["step"]
        old = old_log
        log["history"] = [h for h in old.get("history", []) if h["step"] <= step]
        log["evals"] = [e for e in old.get("evals", []) if e["step"] <= step]
        log["resumed"] = old.get("resumed", []) + [{"from_step": step, "at": time.strftime("%H:%M:%S"),
                                                      "phases": phases}]
        log["phase_end_steps"] = dict(old.get("phase_end_steps", {}))
        if "best" in old:
            log["best"] = old["best"]
            best = old["best"]["score"]
        tokens = sum(min(max(0, step - sum(p[3] for p in phases[:i])), p[3]) * p[1] * p[2]
                     for i, p in enumerate(phases))
        rng.seed(SEED + step)
        min_off = log["history"][-1]["minutes"] if log["history"] else 0.0
    log["status"] = "training"
    log["prep_seconds"] = round(time.time() - t0, 1)
    write_log()
    last_ckpt = time.time()
    run = collections.defaultdict(float)
    nrun = 0
    t_train = time.time()
    tokens0 = tokens
    stop = False

    def checkpoint(tag):
        nonlocal best, last_ckpt
        te = time.time()
        ev = run_eval(model, tok, eval_sets, cfg.num_hidden_layers)
        ck = out / "ckpt" / f"step_{step:05d}"
        save_model(model, cfg, tok, ck)
        entry = {"step": step, "tokens": tokens, "minutes": round(min_off + (time.time() - t_train) / 60, 2),
                 "eval_seconds": round(time.time() - te, 1), "tag": tag, **ev}
        log["evals"].append(entry)
        if ev["score"] >= best:
            best = ev["score"]
            if (out / "best").exists():
                shutil.rmtree(out / "best")
            shutil.copytree(ck, out / "best")
            log["best"] = {"step": step, "score": best, "dir": str(out / "best")}
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step}, out / "last_state.pt")
        write_log()
        print(json.dumps(entry), flush=True)
        last_ckpt = time.time()

    if not args.resume:
        checkpoint("init")
    done = 0
    for (pname, T, B, nsteps, p_rec, kmax, mix) in phases:
        trained = False  # a resumed run skips the phases it has done: keep their end steps
        for _ in range(nsteps):
            done += 1
            if done <= step:
                continue
            trained = True
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            batch = make_batch(gen, T, B, p_rec, kmax, mix)
            loss, parts = loss_fn(model, batch, cfg.num_hidden_layers)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            tokens += B * T
            for k, v in parts.items():
                run[k] += v
            run["gnorm"] += float(gn)
            nrun += 1
            if step % 10 == 0 or args.smoke:
                el = time.time() - t_train
                h = {"step": step, "phase": pname, "tokens": tokens, "minutes": round(min_off + el / 60, 2),
                     "tok_per_s": round((tokens - tokens0) / el, 1), "lr": round(lr_at(step), 6),
                     **{k: round(v / nrun, 4) for k, v in run.items()}}
                log["history"].append(h)
                run.clear()
                nrun = 0
                if step % 50 == 0 or args.smoke:
                    write_log()
                    print(json.dumps(h), flush=True)
            if time.time() - last_ckpt > args.ckpt_minutes * 60:
                checkpoint("periodic")
            if time.time() - t_train > args.max_minutes * 60:
                stop = True
                break
        if trained:
            log.setdefault("phase_end_steps", {})[pname] = step
        if stop:
            break
    checkpoint("final")
    log["status"] = "done" if not stop else "stopped_by_time"
    log["train_minutes"] = round(min_off + (time.time() - t_train) / 60, 2)
    log["tokens_seen"] = tokens
    log["steps"] = step
    write_log()


if __name__ == "__main__":
    main()
