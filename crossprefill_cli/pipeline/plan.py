"""The plan of one budget: the units an analysed text is cut into, what each scores and
costs in target tokens, what is taken first, and how a choice is joined and measured.

`analysis.finish` chooses under a budget from a `Plan`, and `analysis.check_budget_fits`
builds one from the draft's tokens alone (zero scores) to refuse a budget below what
must be kept before the draft reads. Everything here depends on the budget and on the
target's counts, never on the draft: so it is apart from the reading (`analysis.analyse`,
the costly, cached part), which one budget or many (`estimate`) reuse. The required
tail shrinks (halving) until it costs at most a quarter of the budget, so short inputs
at low keep rates still compress; the head never shrinks. Chat messages each keep their
first line too (cut like the head), all of them together shrinking the same way into
another quarter of the budget. A dump's directory tree and a reviewed diff are taken
first, as far as their share of the budget holds them.

    Analysis -> units (head, tail, each message's head, kept spans; `cutting`) ->
    unit scores (`evidence`, the profile's scorer) and target costs -> priorities
    (named definitions, the dump's tree, a reviewed diff) and exclusions (files left
    out) -> `selection.Candidate`s; `join` and `measure` assemble and count a choice,
    gap markers included (`gap_marker`)
"""

from bisect import bisect_left, bisect_right
from typing import TYPE_CHECKING, Callable

import numpy as np

from crossprefill_cli.errors import BudgetError
from crossprefill_cli.models.target import TargetTokenizer
from crossprefill_cli.pipeline.profiles import Profile
from crossprefill_cli.pipeline.references import handle
from crossprefill_cli.settings import check_budget_options
from crossprefill_cli.text import diffs, dumps, outline
from crossprefill_cli.units import chunks, cutting, evidence, layout, selection

if TYPE_CHECKING:
    from crossprefill_cli.pipeline.analysis import Analysis


def budget_of(text: str, counter: TargetTokenizer, settings: Profile, keep_rate: float | None,
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


class Plan:
    """What selection chooses from for one budget: units, their scores and target costs,
    and how a choice is assembled and measured."""

    def __init__(self, analysis: "Analysis", counter: TargetTokenizer, budget: int,
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
            scores = cutting.cover_definitions(scores, planned.signatures)
        self.scores = scores
        named = outline.identifiers(analysis.query or "") | structure.changed_names
        self.favoured = (cutting.named_units(self.units, planned.definitions, named)
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
        tree_ranks = _tree_ranks(self.units, structure.dump.tree, costs, self.gap_cost,
                                 settings.tree_share * budget)
        priority = {**self.favoured,
                    **{index: tree_first + rank for index, rank in tree_ranks.items()}}
        reviewed_tier = 1 + max(priority.values(), default=0)
        priority.update({index: reviewed_tier for index in _reviewed(
            self.units, structure, costs, self.gap_cost, settings.diff_share * budget)})
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
        return gap_marker(self.analysis, start, end, self.gap_tokens(start, end),
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
    `cutting.tree_units`): the whole tree when it costs at most `room` target tokens, gap
    markers included, else its top levels that do; none when not even the top level does."""
    if tree is None:
        return {}
    depths = [depth for *_, depth in tree.entries]
    for deepest in range(max(depths), -1, -1):
        # a unit kept anyway (the input's first line is often the tree's title) costs nothing
        ranks = {index: rank for index, rank in cutting.tree_units(units, tree, deepest).items()
                 if not units[index].required}
        gaps = sum(1 for i, depth in enumerate(depths)
                   if depth > deepest and (i == 0 or depths[i - 1] <= deepest))
        if sum(costs[index] for index in ranks) + gaps * gap_cost <= room:
            return ranks
    return {}


def gap_marker(analysis: "Analysis", start: int, end: int, tokens: int,
               reference: str | None) -> str:
    """What stands for the gap [start, end): the analysis's marker, with its count and
    reference when there is one."""
    marker = analysis.marker(start, end)
    return marker if reference is None else selection.referenced(marker, tokens, reference)


def _units(text: str, starts: np.ndarray, settings: Profile, counter: TargetTokenizer,
           budget: int, structure: layout.Layout, query_span: tuple[int, int] | None = None,
           keep: tuple[tuple[int, int], ...] = (),
           heads: tuple[tuple[int, int], ...] = ()) -> cutting.UnitPlan:
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
    # `cutting` keeps it), unless it would take more than the tail may (then it only steers)
    if query_span is not None:
        query_span = cutting.on_lines(text, structure, query_span, settings.boundary)
        if counter.count(text[slice(*query_span)]) <= budget // 4:
            keep = (*keep, query_span)
    return cutting.units(text, starts, structure, head=head, tail=tail, profile=settings, keep=keep)


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
