"""The symbol graph of the input's code, ranked from what the task names: pure numpy.

A question about how something works, or a diff under review, names a few symbols;
what it needs is those symbols' definitions, the code that uses them (call sites,
imports, overrides, tests) and what they use, before the rest of the dump. As aider's
repository map does, this ranks the dump's symbols by a personalised PageRank:

- a node is a definition (`outline`: a function, method, class, type), or the top
  level of one code part (a file's imports and module code outside any definition);
- a node *writes* the identifiers its own code holds, outside the definitions nested
  in it (`outline.symbols`: tree-sitter's identifiers, else identifier-shaped words);
- a node that writes a name is linked both ways to each node defining that name, with
  weight sqrt(times written) / (nodes defining it): a name written often matters more,
  one defined in many places (`__init__`, `get`) says less about any of them, and a
  name defined in more than `MAX_DEFINERS` places links nothing. A definition is linked
  to the one it is nested in (`NESTED_WEIGHT`), so a class's methods follow the class;
- the walk restarts, with probability 1 - `DAMPING`, at the *seeds*: the nodes the
  task names (`evidence` weighs them: names a diff changes or the question writes,
  name words the question asks about), so rank flows from them to their neighbours
  and fades with each step away.

A unit takes the rank of the innermost node it lies in; units outside code have none.
"""

from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass

import numpy as np

from crossprefill_cli.text.syntax import Definition
from crossprefill_cli.units import chunks

DAMPING = 0.7
MAX_DEFINERS = 8
NESTED_WEIGHT = 1.0
ITERATIONS = 40


@dataclass(frozen=True)
class SymbolGraph:
    names: list[str]  # per node: the name it defines ("" for a part's top level)
    owners: np.ndarray  # per unit: the innermost node it lies in (-1: outside code)
    sources: np.ndarray  # edges (both directions listed), their ends and weights
    targets: np.ndarray
    weights: np.ndarray

    def ranks(self, seeds: np.ndarray) -> np.ndarray:
        """Personalised PageRank of every node, restarting at `seeds` (weights per node)."""
        restart = seeds / seeds.sum()
        out = np.bincount(self.sources, self.weights, minlength=len(self.names))
        share = self.weights / np.where(out > 0, out, 1.0)[self.sources]
        rank = restart.copy()
        for _ in range(ITERATIONS):
            flow = np.bincount(self.targets, rank[self.sources] * share, minlength=len(rank))
            stuck = rank[out == 0].sum()  # a node with no edge hands its rank back to the seeds
            updated = (1 - DAMPING) * restart + DAMPING * (flow + stuck * restart)
            if np.abs(updated - rank).sum() < 1e-9:
                return updated
            rank = updated
        return rank

    def unit_ranks(self, seeds: np.ndarray) -> np.ndarray:
        """Each unit's node's rank (0 outside code)."""
        ranks = self.ranks(seeds)
        return np.where(self.owners >= 0, ranks[np.maximum(self.owners, 0)], 0.0)


def _owners(positions: list[int], spans: list[tuple[int, int]], first_node: int,
            tops: list[tuple[int, int]]) -> np.ndarray:
    """For sorted `positions`: the innermost of nested `spans` holding each (its index
    plus `first_node`), else the `tops` span holding it (its index), else -1."""
    owners = np.full(len(positions), -1)
    for index, (start, end) in enumerate(tops):
        owners[bisect_left(positions, start):bisect_left(positions, end)] = index
    for index, (start, end) in enumerate(spans):  # outermost first: inner ones overwrite
        owners[bisect_left(positions, start):bisect_left(positions, end)] = first_node + index
    return owners


def build(units: list[chunks.Unit], definitions: list[Definition],
          references: list[tuple[int, str]], tops: list[tuple[int, int]]) -> SymbolGraph:
    """The graph of `definitions` (in order of their start, outermost first) and the top levels of the code parts
    at `tops`, linked by the `references` (offset, name) found in them."""
    spans = [(d.signature[0], d.body[1]) for d in definitions]
    first = len(tops)
    names = [""] * first + [d.name for d in definitions]
    references = sorted(references)
    writers = _owners([offset for offset, _ in references], spans, first, tops)
    written: list[Counter] = [Counter() for _ in names]
    for owner, (_, name) in zip(writers.tolist(), references):
        if owner >= 0 and name != names[owner]:
            written[owner][name] += 1
    definers: dict[str, list[int]] = {}
    for node, name in enumerate(names):
        if name:
            definers.setdefault(name, []).append(node)
    edges: dict[tuple[int, int], float] = Counter()
    for node, counts in enumerate(written):
        for name, count in counts.items():
            defined = definers.get(name, ())
            if len(defined) > MAX_DEFINERS:
                continue
            for target in defined:
                if target != node:
                    edges[min(node, target), max(node, target)] += np.sqrt(count) / len(defined)
    tops_holding = _owners([start for start, _ in spans], [], first, tops)
    open_spans: list[int] = []
    for index, (start, _) in enumerate(spans):
        while open_spans and spans[open_spans[-1]][1] <= start:
            open_spans.pop()
        parent = first + open_spans[-1] if open_spans else int(tops_holding[index])
        if parent >= 0:
            edges[parent, first + index] += NESTED_WEIGHT
        open_spans.append(index)
    pairs = np.array(list(edges), dtype=np.int64).reshape(-1, 2)
    weights = np.fromiter(edges.values(), dtype=np.float64, count=len(edges))
    return SymbolGraph(names, _owners([unit.start for unit in units], spans, first, tops),
                       np.concatenate([pairs[:, 0], pairs[:, 1]]),
                       np.concatenate([pairs[:, 1], pairs[:, 0]]),
                       np.concatenate([weights, weights]))
