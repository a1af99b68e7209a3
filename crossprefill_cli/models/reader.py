"""A draft reading a text window by window, whatever engine runs its forward passes.

Scoring (Algorithm 1 of Upasani et al.): prefill `[BOS] + window + query`, recording the
attention of its last token, then step N-1 greedy lookahead tokens through the KV cache,
each step recording its attention. Inputs longer than the draft's window are split into
equal windows; the lookahead tokens are generated once, on the last window (which holds
the end of the input and sits next to the query), and every other window is prefilled
with those lookahead tokens appended, in the same forward call, recording all N query
rows at once. With `query_rows`, the query's own tokens (before its last) are recorded
as well, in the same calls. Each window's attention is normalised over the same kind of
prompt (same length +/- one token, same query), which keeps scores comparable across
windows.

`DraftReader` holds that orchestration; an engine (`draft.Draft` on transformers,
`numpy_draft.NumpyDraft` without torch) supplies the two passes over one window,
`_score_generating` and `_score_teacher_forced`, or schedules the windows itself
(`_windows`: the numpy engine reads the other windows' prompts beside the last one's).
This module imports neither torch nor transformers, so the torch-free path never loads
them.
"""

import contextlib
from dataclasses import dataclass
from typing import Callable, ContextManager, Iterator

import numpy as np

from crossprefill_cli.errors import UsageError
from crossprefill_cli.models.tokens import ids_and_starts


@dataclass(frozen=True)
class Reading:
    """What one scoring pass gives per context token: attention importance, and the
    draft's surprise at the token (its loss, in nats) when asked for."""

    attention: np.ndarray
    surprise: np.ndarray | None = None


class DraftReader:
    """A loaded draft: its name, tokenizer, context length, cache fingerprint, the
    engine that runs it (`backend`), and `read`/`score` over any number of windows."""

    backend = ""

    def __init__(self, name: str, tokenizer, context_length: int, fingerprint: str,
                 bos_id: int | None):
        self.name = name
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.fingerprint = fingerprint
        self.bos_ids = [] if bos_id is None else [bos_id]

    def encode(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and the character offset where each token starts."""
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return ids_and_starts(encoded["input_ids"], encoded["offset_mapping"])

    def score(self, context_ids: np.ndarray, query_ids: list[int], *, lookahead: int,
              pool_kernel: int, window: int, query_rows: int = 0,
              on_progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Importance of every context token (see the module docstring).

        `query_rows` of the query's tokens before its last one also vote (see
        `scoring`). `on_progress(windows_done, windows_total)` is called after each window.
        """
        return self.read(context_ids, query_ids, lookahead=lookahead, pool_kernel=pool_kernel,
                         window=window, query_rows=query_rows, on_progress=on_progress).attention

    def read(self, context_ids: np.ndarray, query_ids: list[int], *, lookahead: int,
             pool_kernel: int, window: int, query_rows: int = 0, surprise: bool = False,
             on_progress: Callable[[int, int], None] | None = None) -> Reading:
        """`score`'s importance and, with `surprise`, each context token's surprise,
        from the same forward calls."""
        if not 0 <= query_rows < max(1, len(query_ids)):
            raise UsageError(f"query_rows={query_rows} needs more than that many query tokens")
        bounds = window_bounds(len(context_ids), window)
        importance = np.zeros(len(context_ids), dtype=np.float64)
        losses = np.zeros(len(context_ids), dtype=np.float64) if surprise else None
        windows = [context_ids[start:stop] for start, stop in bounds]
        scored = self._windows(windows, query_ids, lookahead, pool_kernel, query_rows, surprise)
        # closed at once when progress raises (a budget check), so no window is left running
        with self._reading(), contextlib.closing(scored):
            order = bounds[-1:] + bounds[:-1]
            for done, ((start, stop), (window_importance, window_losses)) in enumerate(
                    zip(order, scored), start=1):
                importance[start:stop] = window_importance
                if surprise:
                    losses[start:stop] = window_losses
                if on_progress is not None:
                    on_progress(done, len(bounds))
        return Reading(importance, losses)

    def _reading(self) -> ContextManager:
        """What every forward pass of one `read` runs inside (the engine's modes)."""
        return contextlib.nullcontext()

    def _windows(self, windows: list[np.ndarray], query_ids: list[int], lookahead: int,
                 pool_kernel: int, query_rows: int, surprise: bool
                 ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """Each window's importance and surprise (or None): the last window first (it
        generates the lookahead), then the others in order, each given that lookahead
        (an engine may schedule them otherwise, in this order of results)."""
        importance, lookahead_ids, losses = self._score_generating(
            windows[-1], query_ids, lookahead, pool_kernel, query_rows, surprise)
        yield importance, losses
        for window_ids in windows[:-1]:
            yield self._score_teacher_forced(window_ids, query_ids, lookahead_ids, pool_kernel,
                                             query_rows, surprise)

    def _score_generating(self, window_ids: np.ndarray, query_ids: list[int], lookahead: int,
                          pool_kernel: int, query_rows: int = 0, surprise: bool = False
                          ) -> tuple[np.ndarray, list[int], np.ndarray | None]:
        """The last window: importance, the greedy lookahead tokens, surprise (or None)."""
        raise NotImplementedError

    def _score_teacher_forced(self, window_ids: np.ndarray, query_ids: list[int],
                              lookahead_ids: list[int], pool_kernel: int, query_rows: int = 0,
                              surprise: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Another window, the lookahead given: importance, surprise (or None)."""
        raise NotImplementedError


def token_importance(per_query: np.ndarray, query_rows: int = 0) -> np.ndarray:
    """Mean over the rows of the layer-maxed attention: (n_rows, S) -> (S,).

    The first `query_rows` rows are the question's tokens: with any, the result is the
    average of their mean and the lookahead rows' mean.
    """
    rows = np.asarray(per_query, dtype=np.float32)
    if query_rows == 0:
        return rows.mean(axis=0)
    return (rows[:query_rows].mean(axis=0) + rows[query_rows:].mean(axis=0)) / np.float32(2)


def window_bounds(n_tokens: int, window: int) -> list[tuple[int, int]]:
    """Split n tokens into the fewest windows of at most `window`, of equal size (+/- 1).

    Equal sizes keep attention mass comparable between windows (each softmax spreads
    over the same number of keys).
    """
    count = max(1, -(-n_tokens // window))
    edges = [round(i * n_tokens / count) for i in range(count + 1)]
    return list(zip(edges[:-1], edges[1:]))
