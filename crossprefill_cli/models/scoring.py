"""Token importance from lookahead attention, and chunk scores: pure functions.

Speculative prefill (Liu et al. 2025; Upasani et al. 2026) scores a prompt token by
how much attention the draft's lookahead queries pay to it:

    probs[l, h, n, s] = softmax_s(q[l, h, n] . k[l, h, s] / sqrt(d))   over prompt keys s
    pooled            = avg_pool_s(probs, kernel)                       (same length)
    importance[s]     = mean_n max_{l, h} pooled[l, h, n, s]

The rows n are the lookahead queries: the last prompt token and the draft's greedy
continuation. Optionally the query's own tokens (the question) vote too: their rows
are averaged as one group and the lookahead rows as another, and the two group means
are averaged, so a long question does not drown the lookahead. A question token's row
sees only the keys before it (causal), like in the forward pass itself.

Pooling spreads a sharp attention peak over its neighbours so that a chunk holding a
fact scores as a whole. The reduction is done layer by layer (`layer_importance`
folded with `torch.maximum`), so memory stays O(N x S) rather than O(L x H x N x S).
The mean over rows is `reader.token_importance`; the torch-free engine
(`numpy_draft`) computes the same quantities in numpy.
"""

import torch
import torch.nn.functional as F


def lookahead_probabilities(query: torch.Tensor, key: torch.Tensor, scaling: float,
                            first_position: int | None = None) -> torch.Tensor:
    """Attention probabilities of queries over keys, in fp32.

    query: (heads, n_queries, head_dim); key: (kv_heads, n_keys, head_dim) with
    `heads` a multiple of `kv_heads` (grouped-query attention shares each key head
    among consecutive query heads). Returns (heads, n_queries, n_keys). With
    `first_position`, query n sits at that position + n and sees no later key.
    """
    heads, kv_heads = query.shape[0], key.shape[0]
    if heads != kv_heads:
        key = key.repeat_interleave(heads // kv_heads, dim=0)
    logits = torch.matmul(query.float(), key.float().transpose(-1, -2)) * scaling
    if first_position is not None:
        positions = first_position + torch.arange(query.shape[1], device=logits.device)
        later = torch.arange(key.shape[1], device=logits.device)[None, :] > positions[:, None]
        logits = logits.masked_fill(later, float("-inf"))
    return torch.softmax(logits, dim=-1)


def avg_pool(values: torch.Tensor, kernel: int) -> torch.Tensor:
    """Average-pool the last axis with stride 1, keeping its length.

    Edges average over the positions that exist (no zero padding), so the first and
    last tokens are not penalised for sitting at the border.
    """
    if kernel <= 1:
        return values
    shape = values.shape
    flat = values.reshape(-1, 1, shape[-1])
    pooled = F.avg_pool1d(F.pad(flat, (kernel // 2, (kernel - 1) // 2)), kernel, stride=1)
    ones = torch.ones((1, 1, shape[-1]), dtype=values.dtype, device=values.device)
    counts = F.avg_pool1d(F.pad(ones, (kernel // 2, (kernel - 1) // 2)), kernel, stride=1)
    return (pooled / counts).reshape(shape)


def layer_importance(probs: torch.Tensor, kernel: int) -> torch.Tensor:
    """One layer's contribution: pool each (head, query) row, then max over heads.

    probs: (heads, n_queries, n_keys) -> (n_queries, n_keys).
    """
    return avg_pool(probs, kernel).amax(dim=0)
