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
input). The required tail shrinks (halving) until it costs at most a quarter of the
budget, so short inputs at low keep rates still compress; the head never shrinks. Chat
messages each keep their first line too (cut like the head), all of them together
shrinking the same way into another quarter of the budget.

The draft is loaded only when its scores are not in the cache, and `draft.py` (which
imports torch and transformers) is imported only then: a cache hit stays cheap.
"""

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable

import numpy as np

from crossprefill_cli.errors import BudgetError, UsageError
from crossprefill_cli.models.cache import ScoreCache, TokenScores, cache_key
from crossprefill_cli.models.loading import BUILTIN
from crossprefill_cli.models.target import TargetTokenizer
from crossprefill_cli.pipeline.draft_source import DraftSource, resolve_target
from crossprefill_cli.pipeline.profiles import Profile, load_profile
from crossprefill_cli.pipeline.references import handle
from crossprefill_cli.results import ChunkReport, FileSpan, KindSpan, Omission, Result, Span
from crossprefill_cli.settings import check_budget_options
from crossprefill_cli.text import diffs, dumps, kinds, messages, outline
from crossprefill_cli.text import query as query_module
from crossprefill_cli.text.source import check_text
from crossprefill_cli.units import chunks, evidence, layout, selection

if TYPE_CHECKING:
    from crossprefill_cli.models.draft import Draft

# The query and lookahead must leave the draft this many context tokens per window.
MIN_WINDOW = 64
# the most of the draft's context a question found inside the text may take
DETECTED_QUERY_SHARE = 0.5
# An output under this share of its budget says why (units too big for the room left).
FAR_BELOW_BUDGET = 0.5
# A dump's directory tree is how a reader finds their way, and small: it is taken before
# the files' text when it costs at most this share of the budget, else its top levels
# that do.
TREE_SHARE = 0.1
# A diff that comes with the code it changes is what is reviewed: it is taken before the
# rest, as far as this share of the budget holds it.
DIFF_SHARE = 0.5

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
    tokens_before, rate, budget = _budget(text, counter, settings, keep_rate, target_tokens)
    plan = _Plan(analysis, counter, budget, reference)
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
    _, _, budget = _budget(text, counter, settings, keep_rate, target_tokens)
    plan = _Plan(Analysis(text, settings, None, None, TokenScores(
        starts, np.zeros(len(starts)), windows=0), cached=False, structure=structure,
        keep=keep, heads=heads, messages=messages), counter, budget, reference)
    if plan.measure([c.required for c in plan.candidates]) > budget and not plan.passes_whole():
        raise plan.too_small()


def _budget(text: str, counter: TargetTokenizer, settings: Profile, keep_rate: float | None,
            target_tokens: int | None) -> tuple[int, float, int]:
    """Target tokens of the input, the keep rate in force and the budget."""
    check_budget_options(keep_rate, target_tokens)
    tokens_before = counter.count(text)
    rate = keep_rate if keep_rate is not None or target_tokens is not None else settings.keep_rate
    budget = target_tokens if target_tokens is not None else int(rate * tokens_before)
    if budget < 1:
        raise BudgetError(f"a keep rate of {rate} leaves no tokens of this "
                         f"{tokens_before}-token input; raise --keep-rate")
    return tokens_before, rate, budget


class _Plan:
    """What selection chooses from for one budget: units, their scores and target costs,
    and how a choice is assembled and measured."""

    def __init__(self, analysis: Analysis, counter: TargetTokenizer, budget: int,
                 reference: str | None = None):
        text, settings, structure = analysis.text, analysis.settings, analysis.structure
        starts, importance = analysis.scores.starts, analysis.scores.importance
        self.text, self.analysis, self.structure, self.counter = text, analysis, structure, counter
        self.budget, self.reference = budget, reference
        planned = _units(text, starts, settings, counter, budget, structure, analysis.query_span,
                         analysis.keep, analysis.heads)
        self.units = planned.units
        token_units = chunks.token_units(starts, self.units)
        surprise = analysis.scores.surprise
        scores = evidence.unit_scores(
            "attention" if analysis.scorer == "custom" else analysis.scorer,
            unit_texts=[text[unit.start:unit.end] for unit in self.units],
            required=[unit.required for unit in self.units], query=analysis.query,
            attention=chunks.unit_scores(importance, token_units, len(self.units)),
            surprise=None if surprise is None else chunks.unit_scores(surprise, token_units,
                                                                      len(self.units)),
            priors=planned.priors, groups=planned.groups, named=structure.changed_names,
            broken=structure.broken_names,
            definition_names=planned.names, identities=planned.identities,
            lineages=planned.lineages, symbols=planned.symbols,
            **_places(self.units, structure))
        if settings.cover_definitions:
            scores = layout.cover_definitions(scores, planned.signatures)
        self.scores = scores
        named = outline.identifiers(analysis.query or "") | structure.changed_names
        self.favoured = (layout.named_units(self.units, planned.definitions, named)
                         if settings.favour_named_definitions and named else {})
        self.bounds = [(unit.start, unit.end) for unit in self.units]
        costs = counter.count_batch([text[start:end] for start, end in self.bounds])
        self.starts = [start for start, _ in self.bounds]
        self.costs_before = np.concatenate([[0], np.cumsum(costs, dtype=np.int64)])
        self.newline = selection.newline_of(text)
        delimiters = structure.delimiters(settings)
        if reference is not None:  # the widest counts and offsets this text can have
            widest = int("9" * len(str(int(self.costs_before[-1]))))
            far = int("9" * len(str(len(text))))
            delimiters = {selection.referenced(delimiter, widest, handle(reference, far, far))
                          for delimiter in delimiters}
        self.gap_cost = max(counter.count_batch(
            [marker for delimiter in delimiters
             for marker in selection.marker_variants(delimiter, self.newline)]))
        tree_first = 1 + max(self.favoured.values(), default=0)  # above named definitions
        priority = {**self.favoured, **{index: tree_first + rank for index, rank in _tree_ranks(
            self.units, structure.dump.tree, costs, self.gap_cost, TREE_SHARE * budget).items()}}
        reviewed_tier = 1 + max(priority.values(), default=0)
        priority.update({index: reviewed_tier for index in _reviewed(
            self.units, structure, costs, self.gap_cost, DIFF_SHARE * budget)})
        dropped = _units_of_files(self.units, structure, analysis.dropped_files)
        self.candidates = [selection.Candidate(float(score), cost, unit.required, unit_needs,
                                               priority=priority.get(index, 0),
                                               excluded=index in dropped)
                           for index, (score, cost, unit, unit_needs)
                           in enumerate(zip(scores, costs, self.units, planned.needs))]

    def gap_tokens(self, start: int, end: int) -> int:
        """The target tokens of the units in [start, end) (a gap is whole units)."""
        first, last = bisect_left(self.starts, start), bisect_left(self.starts, end)
        return int(self.costs_before[last] - self.costs_before[first])

    def reference_of(self, start: int, end: int) -> str | None:
        return None if self.reference is None else handle(self.reference, start, end)

    def marker(self, start: int, end: int) -> str:
        return _marker(self.analysis, start, end, self.gap_tokens(start, end),
                       self.reference_of(start, end))

    def join(self, spans: list[tuple[int, int]]) -> str:
        return selection.join_spans(self.text, spans, self.marker, newline=self.newline)

    def measure(self, kept: list[bool]) -> int:
        return self.counter.count(self.join(selection.merge_spans(self.bounds, kept)))

    def passes_whole(self) -> bool:
        """True for chat messages with nothing to leave out: they go through unchanged,
        whatever the budget (a text that cannot fit its budget is an error instead)."""
        return self.analysis.messages and all(c.required for c in self.candidates)

    def too_small(self) -> BudgetError:
        required = self.measure([c.required for c in self.candidates])
        what = ["the first line", "the tail"]
        if self.analysis.keep:
            what.append("the text kept whole")
        if self.analysis.heads:
            what.append("each message's first line")
        if self.structure.dump.files:
            what.append("every file header")
        listed = ", ".join(what[:-1]) + " and " + what[-1]
        return BudgetError(f"the budget of {self.budget} target tokens is smaller than what must "
                          f"be kept ({required} tokens: {listed}); raise the budget or lower "
                          "keep_head_tokens/keep_tail_tokens in a profile")


def _units_of_files(units: list[chunks.Unit], structure: layout.Layout,
                    paths: tuple[str, ...]) -> set[int]:
    """The units (never a required one: headers stay) of the files at `paths`."""
    spans = [(file.start, file.end) for file in structure.dump.files if file.path in paths]
    return {index for index, unit in enumerate(units)
            if not unit.required and any(start <= unit.start < end for start, end in spans)}


def _reviewed(units: list[chunks.Unit], structure: layout.Layout, costs: list[int],
              gap_cost: int, room: float) -> list[int]:
    """The units of a diff that comes with other text (a dump to review it against), in
    input order, as far as `room` target tokens hold them: what is reviewed is kept first."""
    diff_parts = [part for part in structure.parts if isinstance(part.detail, diffs.DiffStructure)]
    if not diff_parts or len(diff_parts) == len(structure.parts):
        return []
    taken, spent = [], 0
    for index, unit in enumerate(units):
        if unit.required or not any(p.start <= unit.start < p.end for p in diff_parts):
            continue
        if spent + costs[index] + gap_cost > room:
            break
        taken.append(index)
        spent += costs[index]
    return taken


def _places(units: list[chunks.Unit], structure: layout.Layout) -> dict:
    """Each unit's file path in a dump (its words count as the unit's), and whether the
    file is a test, a doc or a changelog (`dumps.is_secondary`)."""
    files = structure.dump.files
    if not files:
        return {}
    starts = [file.start for file in files]
    found = [files[i] if i >= 0 and unit.start < files[i].end else None
             for unit, i in ((u, bisect_right(starts, u.start) - 1) for u in units)]
    return {"paths": [file.path if file else None for file in found],
            "secondary": np.array([file is not None and dumps.is_secondary(file.path, file.language)
                                   for file in found])}


def _tree_ranks(units: list[chunks.Unit], tree: dumps.DirectoryTree | None, costs: list[int],
                gap_cost: int, room: float) -> dict[int, int]:
    """The units of a dump's directory tree to take first, with their ranks (see
    `layout.tree_units`): the whole tree when it costs at most `room` target tokens, gap
    markers included, else its top levels that do; none when not even the top level does."""
    if tree is None:
        return {}
    depths = [depth for *_, depth in tree.entries]
    for deepest in range(max(depths), -1, -1):
        # a unit kept anyway (the input's first line is often the tree's title) costs nothing
        ranks = {index: rank for index, rank in layout.tree_units(units, tree, deepest).items()
                 if not units[index].required}
        gaps = sum(1 for i, depth in enumerate(depths)
                   if depth > deepest and (i == 0 or depths[i - 1] <= deepest))
        if sum(costs[index] for index in ranks) + gaps * gap_cost <= room:
            return ranks
    return {}


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
        return _marker(analysis, start, end, gap.tokens if gap else 0, gap and gap.ref)

    def join(piece: str, spans: list[tuple[int, int]], offset: int) -> str:
        return selection.join_spans(piece, spans,
                                    lambda start, end: marker(offset + start, offset + end),
                                    newline=selection.newline_of(piece))

    return conversation.rebuilt(conversation.compressed([(s.start, s.end) for s in result.spans],
                                                        join))


def _marker(analysis: Analysis, start: int, end: int, tokens: int, reference: str | None) -> str:
    """What stands for the gap [start, end): the analysis's marker, with its count and
    reference when there is one."""
    marker = analysis.marker(start, end)
    return marker if reference is None else selection.referenced(marker, tokens, reference)


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


def _units(text: str, starts: np.ndarray, settings: Profile, counter: TargetTokenizer,
           budget: int, structure: layout.Layout, query_span: tuple[int, int] | None = None,
           keep: tuple[tuple[int, int], ...] = (),
           heads: tuple[tuple[int, int], ...] = ()) -> layout.UnitPlan:
    head = chunks.head_end(text, starts, lines=settings.keep_head_lines,
                           max_tokens=settings.keep_head_tokens,
                           boundary=structure.boundary_at(0, settings.boundary))
    tail_boundary = structure.boundary_at(len(text) - 1, settings.boundary)

    def tail_at(tokens: int) -> int:
        return chunks.tail_start(text, starts, tokens=tokens, low=head, boundary=tail_boundary)

    tail = tail_at(_halved(settings.keep_tail_tokens,
                           lambda tokens: counter.count(text[tail_at(tokens):]), budget // 4))

    def heads_at(tokens: int) -> list[tuple[int, int]]:
        return [_head_of(text, starts, span, lines=settings.keep_head_lines, max_tokens=tokens,
                         boundary=structure.boundary_at(span[0], settings.boundary))
                for span in heads]

    def heads_cost(tokens: int) -> int:
        return sum(counter.count_batch([text[start:end] for start, end in heads_at(tokens)]))

    keep = (*keep, *heads_at(_halved(settings.keep_head_tokens, heads_cost, budget // 4)))
    # a detected question is kept verbatim where it stands (on whole lines in code, as
    # `layout` keeps it), unless it would take more than the tail may (then it only steers)
    if query_span is not None:
        query_span = layout.on_lines(text, structure, query_span, settings.boundary)
        if counter.count(text[slice(*query_span)]) <= budget // 4:
            keep = (*keep, query_span)
    return layout.units(text, starts, structure, head=head, tail=tail, profile=settings, keep=keep)


def _halved(tokens: int, cost: Callable[[int], int], room: int) -> int:
    """The largest of `tokens`, half of it, a quarter, ... 0 whose `cost` is within `room`:
    what is kept beside the head (the tail, each message's first line) shrinks so that a
    small budget still leaves room to choose."""
    while tokens and cost(tokens) > room:
        tokens //= 2
    return tokens


def _head_of(text: str, starts: np.ndarray, span: tuple[int, int], *, lines: int,
             max_tokens: int, boundary: str) -> tuple[int, int]:
    """The head of the text in `span` (a chat message's), cut as the input's head is."""
    start, end = span
    inside = starts[np.searchsorted(starts, start):np.searchsorted(starts, end)] - start
    return start, start + chunks.head_end(text[start:end], inside, lines=lines,
                                          max_tokens=max_tokens, boundary=boundary)
