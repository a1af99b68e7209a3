"""The fused scorer's pure parts: BM25, normalising, hops, and fusion on small cases."""

from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossprefill_cli.units import evidence

FILLER = ["The grass is green and the sky is blue over the quiet hills.",
          "A river runs past the old mill where the farmers bring their grain.",
          "In autumn the leaves turn and the evenings grow short and cold.",
          "Children walk to the school by the bridge every weekday morning."]


def counts(texts):
    return [Counter(evidence.words(text)) for text in texts]


def score(scorer, texts, query, attention=None, surprise=None, required=None):
    n = len(texts)
    return evidence.unit_scores(
        scorer, unit_texts=texts, required=required or [False] * n, query=query,
        attention=np.zeros(n) if attention is None else np.asarray(attention, dtype=float),
        surprise=np.zeros(n) if surprise is None else np.asarray(surprise, dtype=float))


def haystack(n: int, inserted: dict[int, str]) -> list[str]:
    return [inserted.get(i, FILLER[i % len(FILLER)]) for i in range(n)]


def test_bm25_prefers_the_unit_with_the_rare_word_and_ignores_words_everywhere():
    units = counts(["the magic number for otter is 7", "the magic number for heron is 9",
                    "the magic number for badger is 4"])
    scores = evidence.bm25(units, {"magic", "number", "heron"})
    assert scores.argmax() == 1
    # words every unit holds carry (almost) no weight
    shared = evidence.bm25(units, {"magic", "number"})
    assert shared.max() - shared.min() == pytest.approx(0)


def test_bm25_of_no_words_or_no_units_is_zero():
    assert not evidence.bm25(counts(["a b", "c"]), set()).any()
    assert evidence.bm25([], {"a"}).shape == (0,)


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=40))
def test_normalised_is_zero_at_the_median_and_one_at_the_best(values):
    scores = np.array(values)
    among = np.ones(len(scores), dtype=bool)
    result = evidence.normalised(scores, among)
    assert result.min() >= 0
    if scores.max() > np.median(scores):
        assert result.max() == pytest.approx(1)
        assert result[scores.argmax()] == pytest.approx(1)
    else:
        assert not result.any()


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=40), st.sampled_from(["float32", "float64"]))
def test_the_median_is_numpys_to_the_bit(values, dtype):
    scores = np.array(values, dtype=dtype)
    assert evidence._median(scores) == float(np.median(scores))


def test_normalised_ignores_units_outside_the_mask():
    scores = np.array([100.0, 1.0, 2.0, 3.0])
    among = np.array([False, True, True, True])
    result = evidence.normalised(scores, among)
    assert result.tolist() == pytest.approx([1.0, 0.0, 0.0, 1.0])


def test_single_signals_are_returned_unchanged():
    texts = haystack(6, {})
    attention, surprise = np.linspace(0, 1, 6), np.linspace(1, 0, 6)
    np.testing.assert_array_equal(score("attention", texts, "grass", attention, surprise),
                                  attention)
    np.testing.assert_array_equal(score("surprise", texts, "grass", attention, surprise), surprise)


def test_lexical_finds_the_key_among_look_alike_needles():
    keys = ["brave-otter", "calm-heron", "icy-badger", "odd-falcon", "shiny-comet"]
    texts = [f"One of the special magic numbers for {key} is: {100 + i}." for i, key in enumerate(keys)]
    query = "What is the special magic number for icy-badger mentioned in the provided text?"
    assert score("lexical", texts, query).argmax() == 2
    # the draft's attention pointing elsewhere does not outvote the key: each signal's
    # best unit ranks ahead of the rest
    fused = score("evidence", texts, query, attention=[0, 1, 0.2, 0.9, 0.1])
    assert set(np.argsort(-fused)[:2].tolist()) == {1, 2}


def test_the_fused_scorer_keeps_what_attention_finds_when_no_word_matches():
    texts = haystack(12, {5: "The caretaker keeps a carved owl above the stove."})
    attention = np.full(12, 0.1)
    attention[5] = 1.0
    fused = score("evidence", texts, "Which object does the keeper treasure?", attention)
    assert fused.argmax() == 5


def test_hops_follow_a_chain_of_variables_no_question_word_reaches():
    chain = {3: "VAR QWERT = 53535.", 9: "VAR ASDFG = VAR QWERT.", 15: "VAR ZXCVB = VAR ASDFG.",
             21: "VAR POIUY = VAR ZXCVB."}
    texts = haystack(120, chain)
    query = "Find all variables that are assigned the value 53535 in the text above."
    fused = score("evidence", texts, query)
    top = set(np.argsort(-fused)[:4].tolist())
    assert top == set(chain)
    lexical = score("lexical", texts, query)
    assert set(np.argsort(-lexical)[:4].tolist()) != set(chain)  # one hop is all it sees


def test_a_bridge_entity_found_by_its_link_pulls_in_its_fact():
    facts = {7: "The Saltmere lighthouse has been looked after by Marta Quill since the storm.",
             30: "Marta Quill treasures a carved compass above the stove."}
    texts = haystack(80, facts)
    query = "What object does the keeper of the Saltmere lighthouse cherish most?"
    fused = score("evidence", texts, query)
    assert set(np.argsort(-fused)[:2].tolist()) == set(facts)


def test_required_units_seed_no_hop_and_do_not_squash_the_scale():
    texts = haystack(60, {0: "Question: what is the code for Ostwick? VAR ABCDE.",
                          20: "VAR ABCDE = VAR FGHIJ.", 40: "The code for Ostwick is 4411."})
    required = [i == 0 for i in range(60)]
    fused = score("evidence", texts, "What is the code for Ostwick?", required=required)
    assert fused[40] == max(fused[1:])  # the question's own unit does not set the scale
    assert fused[20] < fused[40]  # ...and its words lead no hop


def test_without_a_query_the_draft_signals_decide():
    texts = haystack(10, {})
    attention = np.linspace(0, 1, 10)
    fused = score("evidence", texts, None, attention)
    assert fused.argmax() == 9


def test_marked_words_are_names_numbers_and_identifiers():
    marked = evidence.marked_words(["VAR QWERT = 53535 and the Value", "call parse_header; value",
                                    "then ParseHeader"])
    assert {"qwert", "var", "53535", "parse_header", "parseheader"} <= marked
    assert "value" not in marked and "the" not in marked and "call" not in marked
