"""The losses, and the attention probe they and the eval read attention through.

A plain LM plus recall rows did not form retrieval heads at this scale within a CPU
budget; with an auxiliary attention loss they form within ~100 steps. `loss_fn` sums:

- LM loss on a random `LM_FRACTION` of the text positions (for speed);
- answer loss (`W_ANS`) on the answer tokens and the `<|eos|>` after them;
- retrieval-attention loss (`W_ATT`): at the `Answer:` token and the continuation
  tokens after it, heads `RETRIEVAL_HEADS` of layers `RETRIEVAL_LAYERS` are trained to
  put their attention mass on the target (the asked fact's tokens, or `<|bos|>` when
  the context lacks it): -log of the mean mass;
- a mild penalty (`W_NEG`) on the mass every head of every layer puts on the other
  context tokens at those positions;
- for function questions, a cover term (`W_COVER`): KL from the uniform distribution
  over the target to the designated heads' attention renormalised on it, so that they
  attend to the whole definitions and not only their def lines.

The probe: the model runs with the attention implementation "probe_sdpa", which is
transformers' SDPA plus, for the query rows set in `PROBE["rows"]` (batch and time
indices) and the layers in `PROBE["layers"]`, an explicit fp32 softmax(qK^T * scale)
stored in `PROBE["out"][layer]`. Only the few probed rows pay for explicit attention,
so training and eval keep SDPA's speed.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

W_COVER = 0.2
RETRIEVAL_LAYERS = (1, 2, 3)
RETRIEVAL_HEADS = (0, 1)
W_ANS, W_ATT, W_NEG = 1.0, 0.5, 0.2
LM_FRACTION = 0.35


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
