import numpy as np
import pytest
from conftest import long_text

from crossprefill_cli import compress
from crossprefill_cli.models.cache import ScoreCache, TokenScores, cache_key
from crossprefill_cli.pipeline.draft_source import DraftSource

TEXT = long_text(40)


def scores(n=5) -> TokenScores:
    return TokenScores(np.arange(n, dtype=np.int64) * 2, np.linspace(0, 1, n), windows=2)


def test_round_trip_is_exact(tmp_path):
    cache = ScoreCache(tmp_path)
    cache.put("k", scores())
    again = cache.get("k", text_length=100)
    assert again.windows == 2
    np.testing.assert_array_equal(again.importance, scores().importance)
    assert [p.suffix for p in tmp_path.iterdir()] == [".npz"]  # no temporary files left


def test_keys_change_with_everything_the_scores_depend_on():
    base = dict(query="q", draft="d", lookahead=8, pool_kernel=13, query_template="t",
                window=None, device="auto", dtype="auto")
    key = cache_key("text", **base)
    assert key == cache_key("text", **base)
    assert key != cache_key("text!", **base)
    for name, value in [("query", "other"), ("draft", "e"), ("lookahead", 4),
                        ("pool_kernel", 5), ("window", 100), ("dtype", "bfloat16")]:
        assert key != cache_key("text", **{**base, name: value})


@pytest.mark.parametrize("damage", [b"", b"not a zip file", b"PK\x03\x04broken"])
def test_corrupt_entries_are_ignored(tmp_path, damage):
    cache = ScoreCache(tmp_path)
    (tmp_path / "k.npz").write_bytes(damage)
    assert cache.get("k", text_length=100) is None


def test_entries_that_do_not_fit_the_text_are_ignored(tmp_path):
    cache = ScoreCache(tmp_path)
    cache.put("k", scores(50))
    assert cache.get("k", text_length=10) is None  # offsets beyond the text


def test_an_unwritable_cache_is_simply_not_used(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    ScoreCache(blocker / "cache").put("k", scores())  # no exception


def test_a_hit_does_not_run_the_draft_and_gives_the_same_output(llama_dir, target, tmp_path,
                                                                 monkeypatch):
    cache = ScoreCache(tmp_path)
    first = compress(TEXT, draft=str(llama_dir), target=target, keep_rate=0.3, query="falcon?",
                     cache=cache, device="cpu")

    def no_model(self):
        raise AssertionError("the draft ran on a cache hit")

    monkeypatch.setattr(DraftSource, "load", no_model)
    second = compress(TEXT, draft=str(llama_dir), target=target, keep_rate=0.3, query="falcon?",
                      cache=cache, device="cpu")
    other_rate = compress(TEXT, draft=str(llama_dir), target=target, keep_rate=0.5,
                          query="falcon?", cache=cache, device="cpu")
    assert not first.scores_cached and second.scores_cached and other_rate.scores_cached
    assert second.text == first.text
    assert other_rate.tokens_after > second.tokens_after


def test_a_hit_with_a_question_found_in_the_text_loads_no_model(llama_dir, target, tmp_path,
                                                               monkeypatch):
    cache, asking = ScoreCache(tmp_path), TEXT + "Which entry mentions the falcon?\n"
    options = dict(draft=str(llama_dir), target=target, keep_rate=0.3, cache=cache,
                   device="cpu")
    first = compress(asking, **options)

    def no_model(self):
        raise AssertionError("the draft was loaded on a cache hit")

    monkeypatch.setattr(DraftSource, "load", no_model)
    second = compress(asking, **options)  # the question's length is checked on the tokenizer
    assert first.query_source == second.query_source == "detected"
    assert second.scores_cached and second.text == first.text


def test_a_corrupt_entry_is_rewritten(llama_dir, target, tmp_path):
    cache = ScoreCache(tmp_path)
    compress(TEXT, draft=str(llama_dir), target=target, cache=cache, device="cpu")
    [entry] = tmp_path.glob("*.npz")
    entry.write_bytes(b"garbage")
    rerun = compress(TEXT, draft=str(llama_dir), target=target, cache=cache, device="cpu")
    assert not rerun.scores_cached
    assert cache.get(entry.stem, len(TEXT)) is not None


def test_an_entry_without_surprise_serves_other_scorers_and_is_rescored_for_surprise(
        llama_dir, target, tmp_path):
    cache = ScoreCache(tmp_path)
    options = dict(draft=str(llama_dir), target=target, keep_rate=0.3, query="falcon?",
                   cache=cache, device="cpu")
    fused = compress(TEXT, **options)
    [entry] = tmp_path.glob("*.npz")
    assert not fused.scores_cached and cache.get(entry.stem, len(TEXT)).surprise is None
    assert compress(TEXT, scorer="attention", **options).scores_cached
    surprise = compress(TEXT, scorer="surprise", **options)
    assert not surprise.scores_cached and cache.get(entry.stem, len(TEXT)).surprise is not None
    assert compress(TEXT, **options).scores_cached
    assert compress(TEXT, scorer="surprise", **options).scores_cached
