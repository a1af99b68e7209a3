"""The torch-free engine (`models.numpy_draft`) against the transformers one, and the
choice between them (`models.backends`).

Equivalence is checked on the bundled draft and on tiny random Llama drafts of other
shapes, saved by transformers and loaded through the real loading code of both
engines: grouped-query and multi-query attention, a head size that is not
hidden / heads, separate output head, biases, bfloat16 weights. Each is read over
several windows, with question rows and surprise, and must agree within float32
rounding. The default path's imports, determinism across processes and thread counts,
and flat memory are checked on whole processes or the real reader.
"""

import json
import os
import subprocess
import sys
import threading
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import long_text, train_tokenizer

from crossprefill_cli.errors import ModelLoadError, UsageError
from crossprefill_cli.models import backends, numpy_draft, numpy_llama
from crossprefill_cli.models.draft import load_draft
from crossprefill_cli.models.loading import builtin_path
from crossprefill_cli.pipeline.draft_source import DraftSource

QUESTION = "\n\nQuestion: which entry mentions the falcon and the ledger?\nAnswer:"
# Llama shapes besides the conftest one (4 heads sharing 2 key heads, tied head)
SHAPES = {
    "multi-query, wide heads": dict(num_attention_heads=4, num_key_value_heads=1, head_dim=16),
    "untied head, biases": dict(num_attention_heads=4, num_key_value_heads=4,
                                tie_word_embeddings=False, attention_bias=True, mlp_bias=True),
    "three layers, eight heads of 4": dict(num_hidden_layers=3, num_attention_heads=8,
                                           num_key_value_heads=2, head_dim=4),
}


def save_llama(folder: Path, dtype=torch.float32, **shape) -> Path:
    from transformers import AutoModelForCausalLM, LlamaConfig

    tokenizer = train_tokenizer(vocab_size=320)
    options = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                   max_position_embeddings=512, vocab_size=len(tokenizer), bos_token_id=0,
                   eos_token_id=1, rope_theta=500.0)
    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_config(LlamaConfig(**{**options, **shape}))
    if not shape.get("tie_word_embeddings", True):
        torch.nn.init.normal_(model.lm_head.weight, std=0.5)  # not a copy of the embedding
    for name, parameter in model.named_parameters():
        if name.endswith("bias"):
            torch.nn.init.normal_(parameter, std=0.1)  # biases that matter
    model.to(dtype).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", params=sorted(SHAPES) + ["bfloat16 weights"])
def shaped_dir(request, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("llama")
    if request.param == "bfloat16 weights":
        return save_llama(folder, dtype=torch.bfloat16, num_attention_heads=4,
                          num_key_value_heads=2)
    return save_llama(folder, **SHAPES[request.param])


def both_readings(folder: str, text: str, *, window: int, query_rows: int):
    fast = numpy_draft.load_numpy_draft(folder)
    reference = load_draft(folder, device="cpu", dtype="float32")
    context_ids, starts = fast.encode(text)
    reference_ids, reference_starts = reference.encode(text)
    np.testing.assert_array_equal(context_ids, reference_ids)
    np.testing.assert_array_equal(starts, reference_starts)
    assert fast.bos_ids == reference.bos_ids
    query_ids = fast.encode(QUESTION)[0].tolist()
    options = dict(lookahead=6, pool_kernel=5, window=window, query_rows=query_rows,
                   surprise=True)
    return fast.read(context_ids, query_ids, **options), \
        reference.read(context_ids, query_ids, **options)


def assert_same_reading(fast, reference) -> None:
    np.testing.assert_allclose(fast.attention, reference.attention, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(fast.surprise, reference.surprise, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("query_rows", [0, 4])
def test_numpy_engine_reads_like_transformers_on_every_llama_shape(shaped_dir, query_rows):
    fast, reference = both_readings(str(shaped_dir), long_text(12), window=150,
                                    query_rows=query_rows)
    assert len(fast.attention) > 300  # several windows, the last one generating
    assert_same_reading(fast, reference)


def test_numpy_engine_reads_like_transformers_on_the_conftest_draft(llama_dir):
    assert_same_reading(*both_readings(str(llama_dir), long_text(8), window=200, query_rows=3))


def test_numpy_engine_reads_like_transformers_on_the_bundled_draft():
    if not (builtin_path() / "config.json").is_file():
        pytest.skip("the bundled draft is not part of this build")
    fast, reference = both_readings("builtin", long_text(60), window=1000, query_rows=5)
    assert len(fast.attention) > 2000
    assert_same_reading(fast, reference)


def test_a_block_of_queries_sees_the_same_keys_as_the_whole(llama_dir, monkeypatch):
    """A forward pass in blocks of rows (each block of queries against the keys it may
    see) gives what one block of every row gives."""
    text = long_text(6)
    draft = numpy_draft.load_numpy_draft(str(llama_dir))
    ids, _ = draft.encode(text)
    query_ids = draft.encode(QUESTION)[0].tolist()
    options = dict(lookahead=4, pool_kernel=3, window=400, surprise=True)
    monkeypatch.setattr(numpy_llama, "BLOCK", 10_000)
    whole = draft.read(ids, query_ids, **options)
    monkeypatch.setattr(numpy_llama, "BLOCK", 7)
    assert_same_reading(draft.read(ids, query_ids, **options), whole)


@pytest.mark.parametrize("edge_rows", [7, 16])
def test_a_forward_split_at_a_block_edge_is_the_same_bytes_as_one_call(
        llama_dir, monkeypatch, edge_rows):
    """What lets the other windows read their prompts before the lookahead exists: a
    sequence in two calls, split at a block's edge, gives the same cache, probe and
    hidden states, bit for bit, as one call; and a last layer run only on the blocks
    that hold the rows asked for gives those rows' hidden states unchanged."""
    monkeypatch.setattr(numpy_llama, "BLOCK", 5)
    model = numpy_draft.load_numpy_draft(str(llama_dir)).model
    ids = np.random.default_rng(3).integers(2, 300, 23).tolist()
    options = dict(rows=edge_rows - 2, prompt_length=19, context_start=1, context_stop=17,
                   pool_kernel=3, scaling=model.shape.head_dim ** -0.5)

    def run(calls: list[list[int]], outputs: slice):
        cache = numpy_llama.KeyValueCache(model.shape, len(ids))
        probe = numpy_llama.Probe(**options)
        hidden = np.concatenate([model.forward(part, cache, probe, outputs=outputs)
                                 for part in calls])
        return cache, probe.importance(cache), hidden

    edge = numpy_llama.block_edge(edge_rows)
    one_cache, one_probe, one_hidden = run([ids], slice(None))
    for outputs in (slice(None), slice(-1, None), slice(0, 0)):
        cache, probe, hidden = run([ids[:edge], ids[edge:]], outputs)
        assert np.array_equal(cache.keys, one_cache.keys)
        assert np.array_equal(cache.values, one_cache.values)
        assert np.array_equal(probe, one_probe)
        expected = one_hidden[:edge][outputs], one_hidden[edge:][outputs]
        assert np.array_equal(hidden, np.concatenate(expected))


def test_avg_pool_matches_the_torch_pooling():
    from crossprefill_cli.models import scoring

    values = np.random.default_rng(0).random((3, 4, 50)).astype(np.float32)
    for kernel in (1, 2, 5, 13, 60):
        np.testing.assert_allclose(numpy_llama.avg_pool(values, kernel),
                                   scoring.avg_pool(torch.from_numpy(values), kernel).numpy(),
                                   rtol=1e-5, atol=1e-7)


def test_bfloat16_weights_are_widened_exactly(tmp_path):
    from safetensors.torch import save_file

    weights = torch.randn(5, 7).to(torch.bfloat16)
    save_file({"w": weights, "b": torch.arange(3, dtype=torch.float16)}, tmp_path / "m.safetensors")
    loaded = numpy_llama.load_tensors(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(loaded["w"], weights.float().numpy())
    np.testing.assert_array_equal(loaded["b"], [0.0, 1.0, 2.0])
    assert {array.dtype for array in loaded.values()} == {np.dtype(np.float32)}


def test_auto_runs_small_llama_folders_on_numpy_and_the_rest_on_transformers(
        llama_dir, draft_dirs):
    assert backends.choose_backend(str(llama_dir), "auto", device="auto", dtype="auto") \
        == backends.Backend("numpy")
    qwen = backends.choose_backend(str(draft_dirs["qwen3"]), "auto", device="cpu", dtype="auto")
    assert qwen == backends.Backend("torch", "it is a 'qwen3' model, not a Llama")
    bf16 = backends.choose_backend(str(llama_dir), "auto", device="cpu", dtype="bfloat16")
    assert bf16 == backends.Backend("torch", "the numpy engine runs float32 on the CPU")
    assert backends.choose_backend(str(llama_dir), "torch", device="cpu", dtype="auto") \
        == backends.Backend("torch")


def test_auto_leaves_large_drafts_to_transformers(llama_dir, monkeypatch):
    monkeypatch.setattr(backends, "SMALL_DRAFT_PARAMETERS", 1000)
    chosen = backends.choose_backend(str(llama_dir), "auto", device="auto", dtype="auto")
    assert chosen.name == "torch" and "more than 1,000 parameters" in chosen.reason
    assert backends.choose_backend(str(llama_dir), "numpy", device="cpu", dtype="auto").name \
        == "numpy"  # asked for by name, the size is the user's call


def test_numpy_backend_refuses_what_it_cannot_run(draft_dirs, llama_dir):
    with pytest.raises(UsageError, match="numpy backend cannot run draft .*not a Llama"):
        backends.choose_backend(str(draft_dirs["gpt2"]), "numpy", device="cpu", dtype="auto")
    with pytest.raises(UsageError, match="float32 on the CPU"):
        backends.choose_backend(str(llama_dir), "numpy", device="cuda", dtype="auto")
    with pytest.raises(UsageError, match="unknown backend 'jax'"):
        backends.choose_backend(str(llama_dir), "jax", device="cpu", dtype="auto")


def test_rotary_scalings_it_does_not_implement_fall_back(tmp_path, llama_dir):
    folder = tmp_path / "scaled"
    folder.mkdir()
    for path in llama_dir.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    config = json.loads((llama_dir / "config.json").read_text())
    config["rope_parameters"] = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0}
    (folder / "config.json").write_text(json.dumps(config))
    chosen = backends.choose_backend(str(folder), "auto", device="cpu", dtype="auto")
    assert chosen == backends.Backend("torch", "its rotary scaling 'llama3' is not implemented here")
    with pytest.raises(ModelLoadError, match="cannot run without torch: its rotary scaling"):
        numpy_draft.load_numpy_draft(str(folder))


def test_score_cache_keys_name_the_engine_whose_scores_they_hold(llama_dir):
    fast = DraftSource(str(llama_dir), device="auto", dtype="auto")
    on_cpu = DraftSource(str(llama_dir), device="cpu", dtype="float32")
    slow = DraftSource(str(llama_dir), device="auto", dtype="auto", backend="torch")
    assert fast.score_identity() == on_cpu.score_identity()  # the same float32 scores
    assert slow.score_identity() == {"device": "auto", "dtype": "auto", "forward": "padded"}
    assert fast.score_identity() != slow.score_identity()


def test_memory_stays_flat_across_distinct_inputs(llama_dir):
    draft = numpy_draft.load_numpy_draft(str(llama_dir))
    query_ids = draft.encode(QUESTION)[0].tolist()
    texts = [long_text(paragraphs, needle=f"The falcon code is {n}.", at=n % paragraphs)
             for n, paragraphs in enumerate(range(2, 26))]
    options = dict(lookahead=4, pool_kernel=5, window=300, query_rows=2, surprise=True)
    draft.read(draft.encode(texts[-1])[0], query_ids, **options)  # the largest, first
    tracemalloc.start()
    try:
        held = []
        for text in texts:
            draft.read(draft.encode(text)[0], query_ids, **options)
            held.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    assert max(held) - min(held) < 256 * 1024, held


def test_reads_run_on_the_same_threads_and_may_come_from_several_at_once(llama_dir, monkeypatch):
    draft = numpy_draft.load_numpy_draft(str(llama_dir))
    workers = set()
    for method in ("_score_generating", "_score_forced"):
        def noted(*args, _read=getattr(draft, method)):
            workers.add(threading.current_thread())
            return _read(*args)
        monkeypatch.setattr(draft, method, noted)
    query_ids = draft.encode(QUESTION)[0].tolist()
    texts = [long_text(paragraphs, needle=f"The falcon code is {n}.", at=1)
             for n, paragraphs in enumerate((6, 9, 12, 15))]
    options = dict(lookahead=4, pool_kernel=5, window=300, query_rows=2, surprise=True)
    alone = [draft.read(draft.encode(text)[0], query_ids, **options) for text in texts]
    with ThreadPoolExecutor(max_workers=len(texts)) as callers:
        together = list(callers.map(
            lambda text: draft.read(draft.encode(text)[0], query_ids, **options), texts * 2))
    for reading, reference in zip(together, alone * 2):
        assert np.array_equal(reading.attention, reference.attention)
        assert np.array_equal(reading.surprise, reference.surprise)
    # threads made afresh per read each take memory from an allocator arena of their own
    assert len(workers) <= draft.cores


def run_cli(args: list[str], **environment) -> subprocess.CompletedProcess:
    env = {**os.environ, "CROSSPREFILL_CACHE_DIR": environment.pop("cache"), **environment}
    return subprocess.run([sys.executable, "-m", "crossprefill_cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_default_local_path_imports_neither_torch_nor_transformers(tmp_path):
    """Nor, in a pipe, Rich (only a terminal shows progress) or package metadata."""
    if not (builtin_path() / "config.json").is_file():
        pytest.skip("the bundled draft is not part of this build")
    source = tmp_path / "notes.txt"
    source.write_text(long_text(30, needle="The falcon code is 4417.") + QUESTION)
    probe = ("import runpy, sys\n"
             "sys.argv = ['crossprefill', *sys.argv[1:]]\n"
             "try:\n"
             "    runpy.run_module('crossprefill_cli', run_name='__main__')\n"
             "except SystemExit as done:\n"
             "    assert not done.code, done.code\n"
             "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
             "('torch', 'transformers', 'rich') or m == 'importlib.metadata')\n"
             "sys.stderr.write('HEAVY ' + repr(heavy))\n")
    env = {**os.environ, "CROSSPREFILL_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", probe, "compress", str(source), "--json",
                           "-t", str(builtin_path())],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.endswith("HEAVY []"), done.stderr
    report = json.loads(done.stdout)
    assert (report["backend"], report["backend_reason"]) == ("numpy", None)


def test_output_is_the_same_bytes_in_every_process_and_thread_count(tmp_path, llama_dir):
    source = tmp_path / "notes.txt"
    source.write_text(long_text(40, needle="The falcon code is 4417.") + QUESTION)
    args = ["compress", str(source), "-d", str(llama_dir), "-t", str(llama_dir),
            "--keep-rate", "0.2", "--no-cache", "--json"]
    runs = [run_cli(args, cache=str(tmp_path / "cache"), OPENBLAS_NUM_THREADS=threads,
                    OMP_NUM_THREADS=threads)
            for threads in ("1", "2", "2", "1")]
    assert all(done.returncode == 0 for done in runs), [done.stderr for done in runs]
    reports = [json.loads(done.stdout) for done in runs]
    assert reports[0]["windows"] > 1
    assert all(report["backend"] == "numpy" for report in reports)
    for report in reports[1:]:
        assert report["text"] == reports[0]["text"]
        assert report["chunks"] == reports[0]["chunks"]  # every score, to the last digit


def test_unsupported_draft_falls_back_and_says_so(tmp_path, draft_dirs):
    source = tmp_path / "notes.txt"
    source.write_text(long_text(6))
    qwen = str(draft_dirs["qwen3"])
    done = run_cli(["compress", str(source), "-d", qwen, "-t", qwen, "--keep-rate", "0.5",
                    "--json"], cache=str(tmp_path / "cache"))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["backend"], report["backend_reason"]) == (
        "torch", "it is a 'qwen3' model, not a Llama")
    refused = run_cli(["compress", str(source), "-d", qwen, "-t", qwen, "--keep-rate", "0.5",
                       "--backend", "numpy"], cache=str(tmp_path / "cache"))
    assert refused.returncode == 2
    assert refused.stderr == (f"crossprefill: error: the numpy backend cannot run draft {qwen}: "
                              "it is a 'qwen3' model, not a Llama\n")
    assert refused.stdout == ""


def test_reading_holds_numpys_blas_to_one_thread():
    """What the same bytes with any thread count rest on: threadpoolctl finds numpy's
    OpenBLAS (a release too old for numpy 2's bundled one would find nothing) and holds
    it to one thread while a draft reads, then gives the threads back."""
    from threadpoolctl import threadpool_info

    from crossprefill_cli.models.threads import one_blas_thread

    def blas_threads() -> list[int]:
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads()
    assert before, "threadpoolctl sees no BLAS library"
    with one_blas_thread(), one_blas_thread():  # readers in two threads share the limit
        assert set(blas_threads()) == {1}
    assert blas_threads() == before
