import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from crossprefill_cli.models import reader, scoring
from crossprefill_cli.units import chunks


def test_avg_pool_matches_a_hand_computed_window_mean():
    values = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
    pooled = scoring.avg_pool(values, 3)
    # edges average only over the positions that exist
    expected = [1.5, 2.0, 3.0, 4.0, 5.0, 5.5]
    assert pooled.squeeze().tolist() == pytest.approx(expected)


@given(st.integers(1, 40), st.integers(1, 15))
def test_avg_pool_keeps_shape_and_constant_rows(length, kernel):
    values = torch.full((2, 3, length), 0.25)
    pooled = scoring.avg_pool(values, kernel)
    assert pooled.shape == values.shape
    assert torch.allclose(pooled, values)


def test_avg_pool_even_kernel_is_same_length():
    values = torch.arange(10, dtype=torch.float32).reshape(1, 10)
    assert scoring.avg_pool(values, 4).shape == (1, 10)


def test_lookahead_probabilities_are_a_softmax_over_keys_with_gqa_sharing():
    torch.manual_seed(1)
    query = torch.randn(4, 3, 8)   # 4 heads, 3 lookahead queries
    key = torch.randn(2, 10, 8)    # 2 key heads shared by pairs of query heads
    probs = scoring.lookahead_probabilities(query, key, 8 ** -0.5)
    assert probs.shape == (4, 3, 10)
    assert torch.allclose(probs.sum(-1), torch.ones(4, 3))
    expected_head3 = torch.softmax(query[3] @ key[1].T * 8 ** -0.5, dim=-1)
    assert torch.allclose(probs[3], expected_head3, atol=1e-6)


def test_layer_importance_pools_then_takes_the_max_over_heads():
    probs = torch.zeros(2, 1, 5)
    probs[0, 0, 1] = 1.0  # head 0 looks at key 1
    probs[1, 0, 4] = 0.6  # head 1 looks at key 4
    importance = scoring.layer_importance(probs, 1)
    assert importance.tolist() == [[0.0, 1.0, 0.0, 0.0, pytest.approx(0.6)]]


def test_token_importance_is_the_mean_over_lookahead_queries():
    rows = np.array([[1.0, 0.0], [0.0, 0.5]])
    assert reader.token_importance(rows).tolist() == [0.5, 0.25]


def test_unit_scores_average_their_tokens_and_empty_chunks_score_zero():
    importance = np.array([1.0, 3.0, 2.0, 10.0])
    token_chunk = np.array([0, 0, 2, 2])
    assert chunks.unit_scores(importance, token_chunk, 3).tolist() == [2.0, 0.0, 6.0]


@given(st.integers(1, 5000), st.integers(1, 700))
def test_window_bounds_cover_every_token_in_equal_windows(n_tokens, window):
    bounds = reader.window_bounds(n_tokens, window)
    assert bounds[0][0] == 0 and bounds[-1][1] == n_tokens
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) <= window and max(sizes) - min(sizes) <= 1
    assert len(bounds) == -(-n_tokens // window)


def test_question_rows_see_no_later_key():
    query, key = torch.randn(2, 3, 4), torch.randn(2, 6, 4)
    probs = scoring.lookahead_probabilities(query, key, 0.5, first_position=3)
    # rows sit at positions 3, 4, 5: row n sees keys 0..3+n
    for n in range(3):
        assert torch.all(probs[:, n, 4 + n:] == 0)
        torch.testing.assert_close(probs[:, n, :4 + n].sum(-1), torch.ones(2))
    unmasked = scoring.lookahead_probabilities(query, key, 0.5)
    torch.testing.assert_close(probs[:, 2], unmasked[:, 2])


def test_question_and_lookahead_rows_weigh_the_same_as_groups():
    rows = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(reader.token_importance(rows, query_rows=3), [0.5, 0.5])
    np.testing.assert_allclose(reader.token_importance(rows), [0.75, 0.25])
