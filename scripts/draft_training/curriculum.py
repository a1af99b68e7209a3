"""The curriculum: phases (length, batch, row mix), their learning rates, their batches.

Phases A-C ("facts") teach retrieval in one window at sequence length 256, 512 and
then 1024: natural text LM plus recall rows of facts in prose or code, continued by
their answer. Their learning rate warms up over 100 steps to 2e-3, stays constant,
then decays linearly to a tenth over the last `decay_frac` of their steps. Phases D-F
fine-tune for what crossprefill does with the draft, scoring a long input window by
window; each starts from the annealed end of the phase before and has its own short
schedule (`FINETUNE_LR`, `FINETUNE_WARMUP` steps of warm-up, linear decay to a tenth).

`make_batch` draws each row as a recall row (with the phase's probability) or a natural
one, pads to the phase's length with `<|eos|>` and gathers the positions of each loss:
a random `LM_FRACTION` of the text positions (for speed), the answer tokens, and up to 8
probe positions (the `Answer:` token and the continuation after it) with their target
spans as a mask over the keys.
"""
from __future__ import annotations

import torch

from .losses import LM_FRACTION
from .rows import DataGen

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


def select_phases(steps_scale: float, phase_steps: str | None, smoke: bool):
    """PHASES with the step counts of the command line (--steps-scale, --phase-steps, --smoke)."""
    phases = [(n, T, B, max(1, int(s * steps_scale)), p, k, m) for n, T, B, s, p, k, m in PHASES]
    if phase_steps:
        ov = [int(x) for x in phase_steps.split(",")]
        phases = [(n, T, B, ov[i], p, k, m) for i, (n, T, B, s, p, k, m) in enumerate(phases)]
    if smoke:
        phases = [(n, T, 4, 3, p, k, m) for n, T, B, s, p, k, m in PHASES]
    return phases


def lr_at(step: int, phases, decay_frac: float) -> float:
    """The learning rate of a step of the phases (see the module docstring)."""
    main_steps = sum(p[3] for p in phases if p[6] == "facts")
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
    d0 = int(main_steps * (1 - decay_frac))
    if step < d0:
        return 2e-3
    return 2e-3 * (1 - 0.9 * (step - d0) / max(1, main_steps - d0))


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
