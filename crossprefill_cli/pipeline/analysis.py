"""The draft's analysis of an input, and the selection for each budget.

    analyse:  text -> profile -> the query (given, or detected in the text) -> the
              draft's token signals: attention importance, and surprise for the
              surprise scorer (cached, the costly part)
    finish:   signals -> units (head, chunks, tail) -> unit scores (`evidence`: the
              profile's scorer) -> greedy choice under the target-token budget (a
              dump's directory tree and the definitions a query names first),
              re-measured exactly -> spans joined with gap markers -> Result
    (the library's `compress` and `compress_messages`, in `job`, run both through the
    one `Job`)

The budget is counted in the target's tokens: `target_tokens` if given (a hard
ceiling that wins over the keep rate), else floor(keep_rate x target tokens of the
input). What one budget's choice is made from (the units, their scores and costs, what
goes first) is its `plan.Plan`; here are the reading, the choice and its report, and
chat messages' way in and out (`analyse_messages`, `restore_messages`, `product`).

The draft is loaded only when its scores are not in the cache, and `draft.py` (which
imports torch and transformers) is imported only then: a cache hit stays cheap.
"""

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable

import numpy as np

from crossprefill_cli.errors import UsageError
from crossprefill_cli.models.cache import ScoreCache, TokenScores, cache_key
from crossprefill_cli.models.loading import BUILTIN
from crossprefill_cli.models.target import TargetTokenizer
from crossprefill_cli.pipeline import heap
from crossprefill_cli.pipeline.draft_source import DraftSource, resolve_target
from crossprefill_cli.pipeline.plan import Plan, budget_of, gap_marker
from crossprefill_cli.pipeline.profiles import Profile, load_profile
from crossprefill_cli.results import ChunkReport, FileSpan, KindSpan, Omission, Result, Span
from crossprefill_cli.settings import check_budget_options
from crossprefill_cli.text import dumps, kinds, messages
from crossprefill_cli.text import query as query_module
from crossprefill_cli.text.source import check_text
from crossprefill_cli.units import layout, selection

if TYPE_CHECKING:
    from crossprefill_cli.models.draft import Draft

# The query and lookahead must leave the draft this many context tokens per window.
MIN_WINDOW = 64
# the most of the draft's context a question found inside the text may take
DETECTED_QUERY_SHARE = 0.5
# An output under this share of its budget says why (units too big for the room left).
FAR_BELOW_BUDGET = 0.5

Progress = Callable[[int, int], None]


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
    query_rows: int = 0  # the question's tokens (before its last) whose attention votes too
    on_progress: Progress | None = None


# A custom scorer: every draft token's importance, used as the attention signal alone.
Scorer = Callable[["Draft", ScoringRequest], np.ndarray]
# the named scorer that reads the draft's surprise, and the one that needs no draft pass
SURPRISE_SCORER, DRAFTLESS_SCORER = "surprise", "lexical"


@dataclass
class Analysis:
    """The draft's reading of one input: everything a budget choice needs."""

    text: str
    settings: Profile
    query: str | None  # the query that steered scoring, given or detected
    source: DraftSource
    scores: TokenScores
    cached: bool
    structure: layout.Layout  # files, parts, languages: they do not depend on the budget
    query_source: str = "none"  # "given", "detected" or "none"
    query_span: tuple[int, int] | None = None  # where a detected query sits in the text
    keep: tuple[tuple[int, int], ...] = ()  # spans the caller wants kept whole
    heads: tuple[tuple[int, int], ...] = ()  # texts (chat messages) that keep their first line
    scorer: str = "attention"  # a scorer of `profiles.SCORERS`, or "custom"
    dropped_files: tuple[str, ...] = ()  # a dump's files whose text is never kept
    notes: tuple[str, ...] = ()  # warnings about the reading, for every budget's result
    messages: bool = False  # chat messages: with nothing to drop, they pass through whole

    def marker(self, start: int, end: int) -> str:
        """What stands for the gap [start, end) (see `layout.Layout.marker`)."""
        return self.structure.marker(self.text, start, end, self.settings)


def analyse(text: str, *, profile: str | Profile = "text", draft: "str | Draft | DraftSource" = BUILTIN,
            query: str | None = None, detect_query: bool = True,
            keep: tuple[tuple[int, int], ...] = (), chunk_size: int | None = None,
            pool_kernel: int | None = None, lookahead: int | None = None,
            delimiter: str | None = None, window: int | None = None, device: str = "auto",
            dtype: str = "auto", backend: str = "auto", scorer: "str | Scorer | None" = None, kind: str = "auto",
            include: str | None = None, exclude: str | None = None,
            sections: tuple[tuple[int, int], ...] = (),
            cache: ScoreCache | None = None,
            on_progress: Progress | None = None,
            before_scoring: Callable[[np.ndarray, Profile, layout.Layout], None] | None = None
            ) -> Analysis:
    """Score every draft token of `text` (from the cache when possible).

    `before_scoring(token_starts, settings, structure)` runs once the draft is loaded and
    has tokenised the text, before it reads it: a check that raises there costs no scoring.
    """
    check_text(text)
    # An explicit delimiter marks every gap, in every file's language.
    settings = (profile if isinstance(profile, Profile) else load_profile(profile)).with_overrides(
        chunk_size=chunk_size, pool_kernel=pool_kernel, lookahead=lookahead, delimiter=delimiter,
        prose_delimiter=delimiter, language_delimiters=() if delimiter is not None else None)
    if query is not None and not query.strip():
        raise UsageError("the query is empty")
    if window is not None and window < 1:
        raise UsageError(f"--window must be a positive number of draft tokens, got {window}")
    source = draft if isinstance(draft, DraftSource) else DraftSource(draft, device=device, dtype=dtype,
                                                                      backend=backend)
    settings = source.settle(settings)
    found = dict(query_source="given" if query is not None else "none", keep=tuple(keep))
    detected = (query_module.detect(text, data=kinds.data_span(text))
                if query is None and detect_query else None)
    if detected is not None:
        oversized = _oversized_question(source, settings, detected)
        if oversized:
            found.update(notes=(oversized,))
        else:
            query = detected.text
            found.update(query_source="detected", query_span=(detected.start, detected.end))
    custom = scorer if callable(scorer) else None
    settings = settings.with_overrides(scorer=None if custom else scorer)
    found["scorer"] = "custom" if custom else settings.scorer
    surprise = found["scorer"] == SURPRISE_SCORER
    structure = layout.describe(text, line_mode=settings.boundary == "line", kind=kind,
                                sections=sections)
    found["dropped_files"] = dumps.dropped_files(structure.dump, include, exclude)
    key = None
    if cache is not None and custom is None and settings.scorer != DRAFTLESS_SCORER:
        key = cache_key(text, query=query, draft=source.fingerprint, lookahead=settings.lookahead,
                        pool_kernel=settings.pool_kernel, query_template=settings.query_template,
                        query_rows=settings.query_rows, window=window,
                        **source.score_identity())
        scores = cache.get(key, len(text))
        # an entry without surprise serves every scorer but `surprise`, which re-scores
        if scores is not None and (scores.surprise is not None or not surprise):
            return Analysis(text, settings, query, source, scores, cached=True,
                            structure=structure, **found)
    token_ids, starts = source.encode(text)
    if before_scoring is not None:
        before_scoring(starts, settings, structure)
    model = source.load()
    query_ids, query_rows = _query_prompt(model, settings, query)
    window_size = _window_size(model, window, len(query_ids), settings.lookahead)
    request = ScoringRequest(text, token_ids, starts, query, query_ids, settings.lookahead,
                             settings.pool_kernel, window_size, query_rows=query_rows,
                             on_progress=on_progress)
    if custom is not None:
        importance, losses = custom(model, request), None
    elif found["scorer"] == DRAFTLESS_SCORER:
        importance, losses = np.zeros(len(token_ids)), None
    else:
        reading = model.read(token_ids, query_ids, lookahead=settings.lookahead,
                             pool_kernel=settings.pool_kernel, window=window_size,
                             query_rows=query_rows, surprise=surprise, on_progress=on_progress)
        importance, losses = reading.attention, reading.surprise
        heap.give_back()
    scores = TokenScores(starts, np.asarray(importance, dtype=np.float64),
                         windows=-(-len(token_ids) // window_size), surprise=losses)
    if key is not None:
        cache.put(key, scores)
    return Analysis(text, settings, query, source, scores, cached=False, structure=structure,
                    **found)


def _oversized_question(source: DraftSource, settings: Profile,
                        detected: query_module.DetectedQuery) -> str | None:
    """Why a detected question cannot steer (it would take more than
    `DETECTED_QUERY_SHARE` of the draft's context: a detection that long took a
    passage for the question), or None when it can."""
    tokens = source.token_count(settings.query_template.replace("{query}", detected.text))
    context = source.context_length
    if tokens <= DETECTED_QUERY_SHARE * context:
        return None
    return (f"the question found at characters {detected.start}-{detected.end} is {tokens} "
            f"draft tokens, more than {DETECTED_QUERY_SHARE:.0%} of the draft's context of "
            f"{context}: it is not used, and the text is compressed as if it asked nothing "
            "(give the question as the query to steer by it)")


def _query_prompt(model: "Draft", settings: Profile, query: str | None) -> tuple[list[int], int]:
    """The query prompt's draft tokens, and how many of them, from the query's first token
    to the one before the last, vote with their attention (0 when the profile says not)."""
    if query is None:
        return [], 0
    prompt = settings.query_template.replace("{query}", query)
    ids, starts = model.encode(prompt)
    if not settings.query_rows:
        return ids.tolist(), 0
    # the token holding the query's first character (a leading space may belong to it)
    first = int(np.searchsorted(starts, settings.query_template.index("{query}"), side="right")) - 1
    return ids.tolist(), max(0, len(ids) - 1 - max(first, 0))


def finish(analysis: Analysis, *, keep_rate: float | None = None,
           target_tokens: int | None = None, target: str | TargetTokenizer | None = None,
           on_warning: Callable[[str], None] | None = None,
           reference: str | None = None) -> Result:
    """Choose and assemble the kept spans of an analysed text for one budget; with a
    `reference` (the text's ID in a `references.RefStore`), every gap marker says how to
    ask for its text back."""
    check_budget_options(keep_rate, target_tokens)
    warnings: list[str] = []
    warn = _warner(warnings, on_warning)
    for note in analysis.notes:
        warn(note)
    counter = resolve_target(target, analysis.source, warn)
    text, settings, starts = analysis.text, analysis.settings, analysis.scores.starts
    tokens_before, rate, budget = budget_of(text, counter, settings, keep_rate, target_tokens)
    plan = Plan(analysis, counter, budget, reference)
    fitted = selection.fit_budget(plan.candidates, budget, plan.gap_cost, plan.measure)
    if fitted is None and not plan.passes_whole():
        raise plan.too_small()
    if fitted is None:
        kept = [True] * len(plan.candidates)
        tokens_after = plan.measure(kept)
        warn(f"nothing in these messages can be left out (the system messages and the last "
             f"user message stay whole, the others are their first line): they pass through "
             f"unchanged, {tokens_after} target tokens for a budget of {budget}")
    else:
        kept, tokens_after = fitted
    if tokens_after < FAR_BELOW_BUDGET * budget and not all(kept):
        smallest = min(c.cost for c, k in zip(plan.candidates, kept) if not k)
        warn(f"the output is {tokens_after} target tokens, far below the budget of {budget}: "
             f"the smallest unit left out costs {smallest} tokens; a smaller --chunk-size "
             "lets the budget be used")
    spans = selection.merge_spans(plan.bounds, kept)
    gaps = selection.gaps_between(spans, len(text))
    return Result(
        text=plan.join(spans),
        tokens_before=tokens_before, tokens_after=tokens_after, budget=budget,
        keep_rate=rate if target_tokens is None else keep_rate,
        target=counter.name, draft=analysis.source.name, profile=settings.name,
        scorer=analysis.scorer, draft_tokens=len(starts), windows=analysis.scores.windows,
        lookahead=settings.lookahead,
        query=analysis.query, query_source=analysis.query_source,
        spans=[Span(start, end) for start, end in spans],
        chunks=[ChunkReport(u.start, u.end, round(float(s), 6), k, u.required, i in plan.favoured)
                for i, (u, s, k) in enumerate(zip(plan.units, plan.scores, kept))],
        scores_cached=analysis.cached, warnings=warnings,
        files=[FileSpan(f.path, f.start, f.end, f.language) for f in analysis.structure.dump.files],
        kinds=[KindSpan(part.language, part.start, part.end)
               for part in analysis.structure.parts if part.detail is not None],
        backend=analysis.source.backend.name, backend_reason=analysis.source.backend.reason,
        omitted=[Omission(start, end, plan.gap_tokens(start, end), plan.reference_of(start, end))
                 for start, end in gaps],
    )


def check_budget_fits(text: str, starts: np.ndarray, settings: Profile, structure: layout.Layout,
                      counter: TargetTokenizer, *, keep_rate: float | None = None,
                      target_tokens: int | None = None, keep: tuple[tuple[int, int], ...] = (),
                      heads: tuple[tuple[int, int], ...] = (), messages: bool = False,
                      reference: str | None = None) -> None:
    """Raise the `UsageError` that `finish` would for a budget below what must be kept,
    from the draft's tokens alone: callers check before the draft reads the text.
    `keep` and `heads` are a conversation's (`messages.Conversation.keep`, `heads`), and
    `messages` says the text is chat messages'; `reference` is `finish`'s."""
    _, _, budget = budget_of(text, counter, settings, keep_rate, target_tokens)
    plan = Plan(Analysis(text, settings, None, None, TokenScores(
        starts, np.zeros(len(starts)), windows=0), cached=False, structure=structure,
        keep=keep, heads=heads, messages=messages), counter, budget, reference)
    if plan.measure([c.required for c in plan.candidates]) > budget and not plan.passes_whole():
        raise plan.too_small()


def analyse_messages(conversation: messages.Conversation, *, query: str | None = None,
                     detect_query: bool = True, **options) -> Analysis:
    """`analyse` for chat messages (see `messages`): their joined text, with the system
    messages and the last user message kept whole, every other message's first line
    kept and, without a `query`, the last user message steering."""
    asked = query if query is not None or not detect_query else conversation.query()
    analysis = analyse(conversation.text, query=asked, detect_query=False,
                       keep=conversation.keep(), sections=conversation.heads(), **options)
    detected = query is None and asked is not None
    return replace(analysis, heads=conversation.heads(), messages=True,
                   query_source="detected" if detected else analysis.query_source)


def restore_messages(conversation: messages.Conversation, analysis: Analysis,
                     result: Result) -> object:
    """The messages' JSON with each text replaced by what `result` kept of it (each gap
    marked as `finish` marked it)."""
    omitted = {(gap.start, gap.end): gap for gap in result.omitted}

    def marker(start: int, end: int) -> str:
        gap = omitted.get((start, end))
        return gap_marker(analysis, start, end, gap.tokens if gap else 0, gap and gap.ref)

    def join(piece: str, spans: list[tuple[int, int]], offset: int) -> str:
        return selection.join_spans(piece, spans,
                                    lambda start, end: marker(offset + start, offset + end),
                                    newline=selection.newline_of(piece))

    return conversation.rebuilt(conversation.compressed([(s.start, s.end) for s in result.spans],
                                                        join))


def product(result: Result, analysis: Analysis,
            conversation: messages.Conversation | None) -> str:
    """What a compression prints: the compressed text, or the messages' JSON (in the
    input's style) with their texts compressed."""
    if conversation is None:
        return result.text
    if [(span.start, span.end) for span in result.spans] == [(0, len(conversation.text))]:
        return conversation.source  # nothing left out: the messages as they came
    return messages.dumps_like(conversation.source,
                               restore_messages(conversation, analysis, result))


def _warner(warnings: list[str], on_warning: Callable[[str], None] | None) -> Callable[[str], None]:
    def warn(message: str) -> None:
        warnings.append(message)
        if on_warning is not None:
            on_warning(message)
    return warn


def _window_size(draft_model: "Draft", window: int | None, query_tokens: int, lookahead: int) -> int:
    room = draft_model.context_length - len(draft_model.bos_ids) - query_tokens - lookahead
    if window is None:
        if room < MIN_WINDOW:
            raise UsageError(f"the query ({query_tokens} draft tokens) leaves no room in the "
                             f"draft's context of {draft_model.context_length} tokens")
        return room
    if window > room:
        raise UsageError(f"--window {window} plus the query and lookahead exceeds the draft's "
                         f"context of {draft_model.context_length} tokens (at most {room})")
    return window
