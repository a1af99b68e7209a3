from hypothesis import given
from hypothesis import strategies as st

from crossprefill_cli.units import selection
from crossprefill_cli.units.selection import Candidate


def test_gap_count_counts_runs_of_dropped_units():
    assert selection.gap_count([True, False, False, True, False]) == 2
    assert selection.gap_count([False, True]) == 1
    assert selection.gap_count([True, True]) == 0


def test_greedy_takes_best_units_and_prices_the_gaps():
    candidates = [Candidate(0.1, 10), Candidate(0.9, 10), Candidate(0.5, 10), Candidate(0.2, 10)]
    kept = selection.select_greedy(candidates, budget=25, gap_cost=2)
    # best unit (1) costs 10 + two gaps; the next (2) extends the span: 20 + 2 gaps = 24
    assert kept == [False, True, True, False]
    assert selection.estimated_cost(candidates, kept, 2) == 24


def test_greedy_takes_a_higher_priority_tier_first_and_scores_within_it():
    candidates = [Candidate(0.9, 10), Candidate(0.1, 10, priority=1), Candidate(0.2, 10, priority=1)]
    assert selection.select_greedy(candidates, budget=14, gap_cost=2) == [False, False, True]
    assert selection.select_greedy(candidates, budget=24, gap_cost=2) == [False, True, True]


def test_greedy_keeps_required_units_and_refuses_when_they_cannot_fit():
    candidates = [Candidate(0.0, 10, required=True), Candidate(1.0, 5)]
    assert selection.select_greedy(candidates, budget=15, gap_cost=3) == [True, True]
    assert selection.select_greedy(candidates, budget=9, gap_cost=3) is None


def test_fit_budget_corrects_estimates_with_exact_measures():
    candidates = [Candidate(float(i % 7), 10) for i in range(30)]

    def measure(kept):  # the "real" tokenizer charges 3 more per kept unit
        return sum(13 for k in kept if k) + 2 * selection.gap_count(kept)

    kept, exact = selection.fit_budget(candidates, 200, 2, measure)
    assert exact == measure(kept) <= 200
    assert exact >= 200 * 0.9


@given(st.lists(st.tuples(st.floats(0, 1), st.integers(1, 30)), min_size=1, max_size=60),
       st.integers(0, 600), st.integers(0, 5))
def test_greedy_never_exceeds_the_budget(raw, budget, gap_cost):
    candidates = [Candidate(score, cost) for score, cost in raw]
    kept = selection.select_greedy(candidates, budget, gap_cost)
    if kept is None:  # even the empty choice costs one gap marker
        assert gap_cost > budget
    else:
        assert selection.estimated_cost(candidates, kept, gap_cost) <= budget


def test_merge_spans_joins_adjacent_kept_units():
    bounds = [(0, 3), (3, 7), (7, 9), (9, 12)]
    assert selection.merge_spans(bounds, [True, True, False, True]) == [(0, 7), (9, 12)]


def test_join_spans_puts_markers_on_their_own_line_at_line_starts():
    text = "keep one\ndrop this\nkeep two\n"
    joined = selection.join_spans(text, [(0, 9), (19, 28)], lambda *_: "# ...")
    assert joined == "keep one\n# ...\nkeep two\n"


def test_join_spans_puts_markers_between_words_mid_line():
    text = "alpha beta gamma delta"
    assert selection.join_spans(text, [(0, 5), (16, 22)], lambda *_: "[...]") == "alpha [...] delta"
    assert selection.join_spans(text, [(6, 10)], lambda *_: "[...]") == "[...]\nbeta [...]"


def test_join_spans_asks_each_gap_for_its_delimiter():
    text = "a = 1\nb = 2\nc = 3\nd = 4\n"
    joined = selection.join_spans(text, [(6, 12), (18, 24)],
                                  lambda at, _: "# py" if at < 12 else "// go")
    assert joined == "# py\nb = 2\n// go\nd = 4\n"


def test_greedy_keeps_a_units_needs_with_it_or_neither():
    # unit 2 (best) sits in a function whose signature is unit 0
    candidates = [Candidate(0.0, 5), Candidate(0.1, 10), Candidate(0.9, 10, needs=(0,)),
                  Candidate(0.5, 10)]
    assert selection.select_greedy(candidates, budget=19, gap_cost=1) == [True, False, True, False]
    # too small for the pair: the need is never kept without its owner, nor the reverse
    assert selection.select_greedy(candidates, budget=14, gap_cost=1) == [False, False, False, True]


@given(st.lists(st.tuples(st.floats(0, 1), st.integers(1, 30), st.integers(0, 59)),
                min_size=1, max_size=60), st.integers(0, 600), st.integers(0, 5))
def test_greedy_honours_needs_within_budget(raw, budget, gap_cost):
    candidates: list[Candidate] = []
    for i, (score, cost, need) in enumerate(raw):  # needs closed transitively, as promised
        needs = (need, *candidates[need].needs) if need < i else ()
        candidates.append(Candidate(score, cost, needs=needs))
    kept = selection.select_greedy(candidates, budget, gap_cost)
    if kept is not None:
        assert selection.estimated_cost(candidates, kept, gap_cost) <= budget
        assert all(kept[j] for c, k in zip(candidates, kept) if k for j in c.needs)


def test_markers_use_the_inputs_line_ending():
    text = "keep one\r\ndrop this\r\nkeep two\r\n"
    assert selection.newline_of(text) == "\r\n" and selection.newline_of("a\nb\r\n") == "\n"
    joined = selection.join_spans(text, [(0, 10), (21, 31)], lambda *_: "[...]", newline="\r\n")
    assert joined == "keep one\r\n[...]\r\nkeep two\r\n"
    assert all(variant in selection.marker_variants("[...]", "\r\n")
               for variant in ("[...]\r\n", " [...]\r\n"))


def test_text_that_starts_a_line_after_a_gap_still_starts_one():
    text = "Intro sentence one. Dropped sentence.\n### Heading\n- item\n"
    joined = selection.join_spans(text, [(0, 19), (38, len(text))], lambda *_: "[...]")
    assert joined == "Intro sentence one. [...]\n### Heading\n- item\n"
