"""`compress(text, ...) -> Result`: the one place that orders the steps.

source text -> profile -> draft token importances -> units (head, chunks, tail)
-> unit scores -> greedy choice under the target-token budget (re-measured exactly)
-> spans joined with gap markers -> report.

The budget is counted in the target's tokens: `target_tokens` if given (a hard
ceiling that wins over the keep rate), else floor(keep_rate x target tokens of the
input). The required tail shrinks (halving) until it costs at most a quarter of the
budget, so short inputs at low keep rates still compress; the head never shrinks.
"""

from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from . import chunks, scoring, selection
from .draft import BUILTIN, Draft, load_draft
from .errors import ModelLoadError, UsageError
from .profiles import Profile, load_profile
from .source import check_text
from .target import DEFAULT_TARGET, TargetTokenizer, load_target, tokenizer_target

# The query and lookahead must leave the draft this many context tokens per window.
MIN_WINDOW = 64


@dataclass(frozen=True)
class ScoringRequest:
    """Everything a scorer may look at: the tokenised input and the scoring settings."""

    text: str
    token_ids: np.ndarray
    token_starts: np.ndarray
    query: str | None
    query_ids: list[int]
    lookahead: int
    pool_kernel: int
    window: int


Scorer = Callable[[Draft, ScoringRequest], np.ndarray]


def draft_scorer(draft: Draft, request: ScoringRequest) -> np.ndarray:
    """Speculative prefill: the draft's lookahead attention (the default scorer)."""
    return draft.score(request.token_ids, request.query_ids, lookahead=request.lookahead,
                       pool_kernel=request.pool_kernel, window=request.window)


@dataclass(frozen=True)
class Span:
    start: int
    end: int


@dataclass(frozen=True)
class ChunkReport:
    start: int
    end: int
    score: float
    kept: bool
    required: bool


@dataclass
class Result:
    text: str
    tokens_before: int
    tokens_after: int
    budget: int
    keep_rate: float | None
    target: str
    draft: str
    profile: str
    draft_tokens: int
    windows: int
    spans: list[Span]
    chunks: list[ChunkReport]
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        report = asdict(self)
        report["achieved_rate"] = round(self.tokens_after / self.tokens_before, 4)
        return report


def compress(text: str, *, keep_rate: float | None = None, target_tokens: int | None = None,
             profile: str | Profile = "text", draft: str | Draft = BUILTIN,
             target: str | TargetTokenizer | None = None, query: str | None = None,
             chunk_size: int | None = None, pool_kernel: int | None = None,
             lookahead: int | None = None, delimiter: str | None = None,
             window: int | None = None, device: str = "auto", dtype: str = "auto",
             scorer: Scorer = draft_scorer,
             on_warning: Callable[[str], None] | None = None) -> Result:
    """Compress `text` to a target-token budget with cross-family speculative prefill.

    `scorer` gives every draft token an importance; the default is the draft's
    lookahead attention. Other scorers (baselines, caches) plug in here and go through
    exactly the same chunking, budget and assembly.
    """
    check_text(text)
    warnings: list[str] = []

    def warn(message: str) -> None:
        warnings.append(message)
        if on_warning is not None:
            on_warning(message)

    settings = (profile if isinstance(profile, Profile) else load_profile(profile)).with_overrides(
        chunk_size=chunk_size, pool_kernel=pool_kernel, lookahead=lookahead, delimiter=delimiter)
    if keep_rate is not None and not 0 < keep_rate <= 1:
        raise UsageError(f"keep rate must be in (0, 1], got {keep_rate}")
    if target_tokens is not None and target_tokens < 1:
        raise UsageError(f"--target-tokens must be a positive number, got {target_tokens}")
    if query is not None and not query.strip():
        raise UsageError("the query is empty")
    draft_model = draft if isinstance(draft, Draft) else load_draft(draft, device=device, dtype=dtype)
    counter = _resolve_target(target, draft_model, warn)

    tokens_before = counter.count(text)
    rate = keep_rate if keep_rate is not None or target_tokens is not None else settings.keep_rate
    budget = target_tokens if target_tokens is not None else int(rate * tokens_before)
    if budget < 1:
        raise UsageError(f"a keep rate of {rate} leaves no tokens of this "
                         f"{tokens_before}-token input; raise --keep-rate")

    context_ids, starts = draft_model.encode(text)
    query_ids = (draft_model.encode_plain(settings.query_template.replace("{query}", query))
                 if query is not None else [])
    window_size = _window_size(draft_model, window, len(query_ids), settings.lookahead)
    importance = scorer(draft_model, ScoringRequest(
        text, context_ids, starts, query, query_ids, settings.lookahead, settings.pool_kernel,
        window_size))

    units = _units(text, starts, settings, counter, budget)
    unit_of_token = chunks.token_units(starts, units)
    scores = scoring.chunk_scores(importance, unit_of_token, len(units))
    bounds = [(unit.start, unit.end) for unit in units]
    costs = counter.count_batch([text[start:end] for start, end in bounds])
    candidates = [selection.Candidate(float(score), cost, unit.required)
                  for score, cost, unit in zip(scores, costs, units)]
    gap_cost = max(counter.count_batch(selection.marker_variants(settings.delimiter)))

    def measure(kept: list[bool]) -> int:
        return counter.count(selection.join_spans(text, selection.merge_spans(bounds, kept),
                                                  settings.delimiter))

    fitted = selection.fit_budget(candidates, budget, gap_cost, measure)
    if fitted is None:
        required = measure([c.required for c in candidates])
        raise UsageError(f"the budget of {budget} target tokens is smaller than what must be "
                         f"kept ({required} tokens: the first line and the tail); raise the "
                         "budget or lower keep_head_tokens/keep_tail_tokens in a profile")
    kept, tokens_after = fitted
    spans = selection.merge_spans(bounds, kept)
    return Result(
        text=selection.join_spans(text, spans, settings.delimiter),
        tokens_before=tokens_before, tokens_after=tokens_after, budget=budget,
        keep_rate=rate if target_tokens is None else keep_rate,
        target=counter.name, draft=draft_model.name, profile=settings.name,
        draft_tokens=len(context_ids),
        windows=len(scoring.window_bounds(len(context_ids), window_size)),
        spans=[Span(start, end) for start, end in spans],
        chunks=[ChunkReport(u.start, u.end, round(float(s), 6), k, u.required)
                for u, s, k in zip(units, scores, kept)],
        warnings=warnings,
    )


def _resolve_target(target, draft_model: Draft, warn) -> TargetTokenizer:
    if isinstance(target, TargetTokenizer):
        return target
    if target is not None:
        return load_target(target)
    try:
        return load_target(DEFAULT_TARGET)
    except ModelLoadError:
        warn(f"the default target encoding {DEFAULT_TARGET} cannot be loaded (offline?); "
             f"counting tokens with the draft's tokenizer ({draft_model.name}) instead")
        return tokenizer_target(f"draft tokenizer ({draft_model.name})", draft_model.tokenizer)


def _window_size(draft_model: Draft, window: int | None, query_tokens: int, lookahead: int) -> int:
    room = draft_model.context_length - len(draft_model.bos_ids) - query_tokens - lookahead
    if window is None:
        if room < MIN_WINDOW:
            raise UsageError(f"the query ({query_tokens} draft tokens) leaves no room in the "
                             f"draft's context of {draft_model.context_length} tokens")
        return room
    if window < 1:
        raise UsageError(f"--window must be a positive number of draft tokens, got {window}")
    if window > room:
        raise UsageError(f"--window {window} plus the query and lookahead exceeds the draft's "
                         f"context of {draft_model.context_length} tokens (at most {room})")
    return window


def _units(text: str, starts: np.ndarray, settings: Profile, counter: TargetTokenizer,
           budget: int) -> list[chunks.Unit]:
    head = chunks.head_end(text, starts, lines=settings.keep_head_lines,
                           max_tokens=settings.keep_head_tokens, boundary=settings.boundary)
    tail_tokens = settings.keep_tail_tokens
    while True:
        tail = chunks.tail_start(text, starts, tokens=tail_tokens, low=head,
                                 boundary=settings.boundary)
        if tail_tokens == 0 or counter.count(text[tail:]) <= budget // 4:
            break
        tail_tokens //= 2
    return chunks.build_units(text, starts, chunk_size=settings.chunk_size,
                              boundary=settings.boundary, head=head, tail=tail)
