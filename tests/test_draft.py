"""The draft's lookahead attention, checked against an independent reference.

The reference runs the same model with eager attention and `output_attentions=True`
over prompt + lookahead tokens (fine for a few dozen tokens), restricts each lookahead
row to the prompt keys by renormalising (softmax over a subset = renormalised
softmax), pools with numpy, and reduces max-over-layers-and-heads, mean-over-queries.
"""

import numpy as np
import pytest
import torch
from conftest import long_text, save_tiny_draft

from crossprefill_cli.errors import ModelLoadError, UsageError
from crossprefill_cli.models import draft as draft_module
from crossprefill_cli.models import reader, scoring
from crossprefill_cli.models.draft import load_draft
from crossprefill_cli.models.loading import builtin_path, draft_defaults

TEXT = long_text(3)
QUERY = "\n\nQuestion: which entry mentions the falcon?\nAnswer:"


def numpy_pool(row: np.ndarray, kernel: int) -> np.ndarray:
    half_left, half_right = kernel // 2, (kernel - 1) // 2
    return np.array([row[max(0, i - half_left): i + half_right + 1].mean()
                     for i in range(len(row))])


def reference_importance(folder, context_ids, query_ids, lookahead, kernel, query_rows=0):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    bos = [AutoTokenizer.from_pretrained(folder).bos_token_id]
    prompt = bos + list(context_ids) + list(query_ids)
    sequence = list(prompt)
    with torch.no_grad():
        for _ in range(lookahead - 1):
            logits = model(torch.tensor([sequence])).logits
            sequence.append(int(logits[0, -1].argmax()))
        attentions = model(torch.tensor([sequence]), output_attentions=True).attentions
    # eager attention is causal already: a question row has zeros beyond itself
    rows = range(len(prompt) - 1 - query_rows, len(prompt) - 1 + lookahead)
    context = slice(len(bos), len(bos) + len(context_ids))
    per_query = np.zeros((len(rows), len(context_ids)))
    for layer in attentions:
        for head in layer[0].numpy():
            for n, row in enumerate(rows):
                probs = head[row, :len(prompt)] / head[row, :len(prompt)].sum()
                per_query[n] = np.maximum(per_query[n], numpy_pool(probs[context], kernel))
    if query_rows:
        return (per_query[:query_rows].mean(axis=0) + per_query[query_rows:].mean(axis=0)) / 2
    return per_query.mean(axis=0)


@pytest.mark.parametrize("query_rows", [0, 3])
@pytest.mark.parametrize("family", ["llama", "qwen3", "gpt2"])
def test_probe_matches_eager_attention_reference(draft_dirs, family, query_rows):
    folder = draft_dirs[family]
    draft = load_draft(str(folder), device="cpu", dtype="float32")
    context_ids, _ = draft.encode(TEXT)
    query_ids = draft.encode(QUERY)[0].tolist()
    ours = draft.score(context_ids, query_ids, lookahead=4, pool_kernel=5, window=10_000,
                       query_rows=query_rows)
    expected = reference_importance(folder, context_ids, query_ids, 4, 5, query_rows)
    assert ours.shape == (len(context_ids),)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("query_rows", [0, 4])
def test_teacher_forced_windows_score_like_the_generating_window(llama_draft, query_rows):
    context_ids, _ = llama_draft.encode(TEXT)
    query_ids = llama_draft.encode(QUERY)[0].tolist()
    with torch.inference_mode():
        generated, lookahead_ids, _ = llama_draft._score_generating(context_ids, query_ids, 6,
                                                                    13, query_rows)
        forced, _ = llama_draft._score_teacher_forced(context_ids, query_ids, lookahead_ids, 13,
                                                      query_rows)
    assert len(lookahead_ids) == 5
    np.testing.assert_allclose(generated, forced, rtol=1e-4, atol=1e-6)


def test_windowed_scoring_covers_every_token_and_probes_only_lookahead_rows(
        llama_draft, monkeypatch):
    seen_rows, forward_kwargs = [], []
    original_probabilities = scoring.lookahead_probabilities
    original_forward = llama_draft.model.forward

    def spy_probabilities(query, key, scaling, **options):
        seen_rows.append(query.shape[1])
        return original_probabilities(query, key, scaling, **options)

    def spy_forward(*args, **kwargs):
        forward_kwargs.append(kwargs)
        return original_forward(*args, **kwargs)

    monkeypatch.setattr(scoring, "lookahead_probabilities", spy_probabilities)
    monkeypatch.setattr(llama_draft.model, "forward", spy_forward)
    context_ids, _ = llama_draft.encode(long_text(12))
    importance = llama_draft.score(context_ids, [], lookahead=3, pool_kernel=13, window=100)
    assert importance.shape == (len(context_ids),) and np.all(importance > 0)
    assert max(seen_rows) <= 3                      # never S x S attention
    assert all(kw.get("logits_to_keep") == 1 for kw in forward_kwargs)
    windows = len(reader.window_bounds(len(context_ids), 100))
    # the last window: its prefill records the first row, then 2 generating steps; every
    # other window: one call, its prefill with the lookahead appended
    assert len(forward_kwargs) == 3 + (windows - 1)


def test_sliding_window_layers_have_no_say_beyond_their_window(tmp_path):
    draft = load_draft(str(save_tiny_draft(tmp_path, "gemma3")), device="cpu")
    context_ids, _ = draft.encode(long_text(6))
    assert len(context_ids) > 64
    importance = draft.score(context_ids, [], lookahead=2, pool_kernel=3, window=10_000)
    assert importance.shape == (len(context_ids),)


def test_offsets_point_at_token_text(llama_draft):
    text = "naïve café — déjà vu 🚀 done"
    ids, starts = llama_draft.encode(text)
    assert len(ids) == len(starts) and starts[0] == 0
    assert np.all(np.diff(starts) >= 0) and starts[-1] < len(text)


def test_missing_local_draft_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="no such directory"):
        load_draft(str(tmp_path / "absent"), device="cpu")


def test_directory_without_a_model_is_a_clear_error(tmp_path, llama_dir):
    with pytest.raises(ModelLoadError, match="not a model directory"):
        load_draft(str(tmp_path), device="cpu")
    (tmp_path / "config.json").write_bytes((llama_dir / "config.json").read_bytes())
    with pytest.raises(ModelLoadError, match="cannot load draft"):
        load_draft(str(tmp_path), device="cpu")  # a config, but no weights or tokenizer


def test_unknown_device_and_dtype_are_usage_errors(llama_dir):
    with pytest.raises(UsageError):
        load_draft(str(llama_dir), device="tpu")
    with pytest.raises(UsageError):
        load_draft(str(llama_dir), device="cpu", dtype="float8")


def test_bfloat16_draft_scores_like_float32(llama_dir, llama_draft):
    bf16 = load_draft(str(llama_dir), device="cpu", dtype="bfloat16")
    assert next(bf16.model.parameters()).dtype == torch.bfloat16
    ids, _ = llama_draft.encode(TEXT)
    a = llama_draft.score(ids, [], lookahead=2, pool_kernel=13, window=1000)
    b = bf16.score(ids, [], lookahead=2, pool_kernel=13, window=1000)
    assert np.corrcoef(a, b)[0, 1] > 0.9


def test_builtin_draft_loads_or_says_it_is_missing():
    if (builtin_path() / "config.json").exists():
        assert load_draft("builtin", device="cpu").context_length >= 512
        # its folder's scoring defaults parse (a broken file would fail every compress)
        assert draft_defaults("builtin")["lookahead"] >= 1
    else:
        with pytest.raises(ModelLoadError, match="bundled draft"):
            load_draft("builtin", device="cpu")


@pytest.mark.parametrize("native, expected", [(True, torch.bfloat16), (False, torch.float32)])
def test_auto_dtype_on_cpu_follows_native_bf16_support(monkeypatch, native, expected):
    monkeypatch.setattr(draft_module, "cpu_has_native_bf16", lambda: native)
    assert draft_module.resolve_dtype("auto", torch.device("cpu")) == expected
    assert draft_module.resolve_dtype("float32", torch.device("cpu")) == torch.float32


def test_query_rows_must_leave_the_last_query_token_to_the_lookahead(llama_draft):
    context_ids, _ = llama_draft.encode(TEXT)
    query_ids = llama_draft.encode(QUERY)[0].tolist()
    with pytest.raises(UsageError, match="query_rows"):
        llama_draft.score(context_ids, query_ids, lookahead=2, pool_kernel=5, window=10_000,
                          query_rows=len(query_ids))


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_surprise_is_the_drafts_loss_on_each_token_and_leaves_attention_alone(
        draft_dirs, family, monkeypatch):
    draft = load_draft(str(draft_dirs[family]), device="cpu", dtype="float32")
    context_ids, _ = draft.encode(long_text(8))
    query_ids = draft.encode(QUERY)[0].tolist()
    # small output-head blocks: the blocked loss must equal the whole one
    monkeypatch.setattr(draft_module, "SURPRISE_BLOCK", 7)
    options = dict(lookahead=3, pool_kernel=5, window=60, query_rows=2)
    plain = draft.read(context_ids, query_ids, **options)
    read = draft.read(context_ids, query_ids, surprise=True, **options)
    assert plain.surprise is None
    np.testing.assert_allclose(read.attention, plain.attention, rtol=1e-5, atol=1e-7)
    expected = np.zeros(len(context_ids))
    for start, stop in reader.window_bounds(len(context_ids), 60):
        window = draft.bos_ids + context_ids[start:stop].tolist()
        with torch.no_grad():
            logits = draft.model(torch.tensor([window])).logits[0].float()
        offset = len(draft.bos_ids)
        targets = torch.tensor(window[offset:])
        losses = torch.nn.functional.cross_entropy(logits[offset - 1:-1] if offset else logits[:-1],
                                                   targets if offset else targets[1:],
                                                   reduction="none").numpy()
        expected[start + (0 if offset else 1):stop] = losses
    np.testing.assert_allclose(read.surprise, expected, rtol=1e-4, atol=1e-5)
