"""Training and eval rows: token ids plus the positions each loss looks at.

A row is a dict: `ids` (starting with `<|bos|>`), `lm_end` (the LM loss is on a
random share of the positions before it), and for the recall rows `last` (the `Answer:` token),
`cont_len` (how many continuation tokens follow it), `targets` (token spans the
retrieval heads must attend to from `last` and the continuation; `(0, 1)` is
`<|bos|>`), `ctx_len`, and `ans_ids` when the continuation is the answer.

- `natural`: a passage of the docs (55%) or the code, LM loss only.
- `recall`: 1-6 facts of `facts.FactMaker` inserted at line starts and sentence ends
  of a natural passage (a quarter of the passages are code), then
  `\\n\\nQuestion: ...\\nAnswer:` and the answer. The target is the asked fact's
  sentence. Variants for scoring a long input window by window: the asked fact left
  out (`absent`: another window holds it, the heads rest on `<|bos|>`, "no evidence
  here", so that attention is comparable across windows) and the answer replaced by
  `filler` words, like the draft's own wrong greedy lookahead, which must still attend
  to the fact.
- `functions`: a code passage and a question naming 1-4 functions; the target is the
  whole definition of each named function in the passage (`cover` spreads attention
  over it), or `<|bos|>` when it holds none of them (names taken from other files).

Eval rows (`heldout_len`) are recall rows of a fixed prompt length with no
continuation; `probe` puts a hand-written fact in place of the synthetic ones.
"""
from __future__ import annotations

import random
import re

from .corpus import Corpus
from .facts import FILLER_WORDS, FUNCTION_QUESTION_TRAIN, QUERY_TEMPLATE, FactMaker


class DataGen:
    """Rows from two corpora (docs, code) and a FactMaker, every draw from one rng."""

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

