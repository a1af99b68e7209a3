"""Unit scores from several signals, fused: pure functions over numpy arrays.

The draft's lookahead attention finds facts that answer the question even when they
share no word with it, but it is nearly blind among look-alikes (a haystack of needles
of one shape, where only a key differs). Lexical evidence is the opposite: it finds
the key at once and nothing it cannot see in the question's words. So the default
scorer (`evidence`) fuses them, and follows links the question's words cannot see:

    attention[u]  mean lookahead-attention importance of unit u's draft tokens
    lexical[u]    BM25 of the question's terms in u (units are the documents; `terms`:
                  stems, identifiers split, a file's path words counted as its units')
    links[u]      how specific the most specific link word u holds is (see below)
    priors[u]     a log's novelty and severity, data's shape (`records`)
    record[u]     the best lexical score in u's record (JSON: an object among objects)
    identity[u]   how surely the question names u's record: the asked terms among the
                  values only it holds, its key and the names of the record it lies in,
                  plus each such name written whole (`identity_hits`)
    defines[u]    the share of the words of the name u defines that the question asks
    references[u] the names a diff changes that u writes (call sites, imports, tests),
                  a name whose callers must change (`broken`) counting 1, another
                  `UNBROKEN_SHARE`
    graph[u]      the rank of u's definition in the code's symbol graph (`graph`),
                  personalised to the definitions the task names (`seeds`)
    fused[u]      sum_i weight_i * normalised(signal_i)[u], halved in tests, docs and
                  changelogs unless the question asks about those

`normalised` puts each signal on one scale: 0 at its median unit, 1 at its best
(among the units selection may drop: the always-kept ones, the question itself among
them, would only squash it), so a signal that singles out a few units gives them most
of its weight and a flat one gives little to anyone.

Link words are the question's rare words (held by at most `ASKED_SHARE` of the units)
and the words hops find from them (held by at most `RARE_SHARE`: a hop's word must be
rarer, since it was not asked for). A word's specificity: a marked word (a name, a
number, an identifier: never written as a plain lower-case word) before any plain
one, then the fewer units hold it the better. BM25 sums over words, so one unit
holding two of four asked keys outranks each unit holding one; `links` takes the
most specific word a unit holds, so every unit with a key ranks alike.

Hops: the unit holding the most specific rare word of the question seeds the first
hop (`HOP_SEEDS` of them, ties to the better unit so far); the rare words of its
sentence that holds that word (and that some other unit holds too, else they lead
nowhere) become link words, and the units holding them seed the next hop. So
`VAR B = VAR A` is found from `VAR A = 12345` asked about 12345, and a bridge entity
(the person who keeps the lighthouse) pulls in the fact about them. Hops reuse the
draft's reading: only words are re-read, which costs next to nothing.

The draft's surprise (its loss on each token) is there for `--scorer surprise` only:
on the development cases it added nothing to the fusion (the same, or a point or two
lower, at every weight tried), and the output head over the whole context made the
draft's pass 1.4-1.6x slower.

BM25 is written out over numpy rather than taken from a library (bm25s, rank-bm25):
the documents are this call's units, rebuilt for every budget, and the question's
few words are the whole vocabulary that matters, so an index would cost more than it
saves. Words are runs of Unicode word characters, lowercased (in Chinese and Japanese,
pairs of characters: `text.scripts`); identifiers such as `parse_header` stay whole,
which is what a question naming one means.

The weights and hop settings were chosen on development cases drawn from other seeds
than the benchmark's (`python -m bench.evidence --split dev`).
"""

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from crossprefill_cli.text import scripts
from crossprefill_cli.units import graph, terms

WEIGHTS = {"attention": 1.0, "lexical": 1.0, "links": 1.0, "novelty": 1.0, "severity": 1.0,
           "shape": 0.5, "record": 1.0, "identity": 1.0, "defines": 1.0, "references": 2.0,
           "graph": 0.25}
# how much a unit in tests, docs or a changelog weighs beside the implementation, when
# the question does not ask about those (`PLACE_TERMS`, as `terms` stems them)
SECONDARY_WEIGHT = 0.5
# what a changed name whose calls still work weighs beside one whose callers must change
UNBROKEN_SHARE = 0.25
PLACE_TERMS = frozenset({"test", "doc", "document", "changelog", "chang", "histori", "exampl",
                         "readm", "releas", "spec", "benchmark"})
HOPS = 4  # rounds of link-following
HOP_SEEDS = 2  # units a hop follows links from...
HOP_CANDIDATES = 8  # ...looked for among this many with the best links
HOP_TERMS = 3  # link words taken from each seed, the most specific first
ASKED_SHARE = 0.05  # the question's words held by at most this share of units are links
RARE_SHARE = 0.02  # hops go through words held by at most this share of units
BM25_K1, BM25_B = 1.2, 0.75
WORD_RUN = re.compile(r"[^\s,;:!?()\"']+(?<![.])")  # a name as a question writes it
SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|(?<=[。！？；])|\n")


def words(text: str) -> list[str]:
    return scripts.words(text.lower())


def bm25(unit_words: list[Counter], terms: set[str]) -> np.ndarray:
    """Okapi BM25 of the query's `terms` in every unit, the units being the corpus."""
    n_units = len(unit_words)
    scores = np.zeros(n_units)
    if not terms or not n_units:
        return scores
    lengths = np.array([sum(counts.values()) for counts in unit_words], dtype=np.float64)
    norm = BM25_K1 * (1 - BM25_B + BM25_B * lengths / max(lengths.mean(), 1.0))
    for term in sorted(terms):  # one order of addition in every process (hash seeds vary)
        tf = np.array([counts.get(term, 0) for counts in unit_words], dtype=np.float64)
        df = np.count_nonzero(tf)
        if df == 0:
            continue
        idf = np.log(1 + (n_units - df + 0.5) / (df + 0.5))
        scores += idf * tf * (BM25_K1 + 1) / (tf + norm)
    return scores


def normalised(scores: np.ndarray, among: np.ndarray) -> np.ndarray:
    """0 at the median of the units `among` (a mask), 1 at their maximum, clipped to
    [0, 1]; all zeros when those units score alike. Units outside `among` (the
    always-kept ones, the question itself) would only squash the scale."""
    if not among.any():
        return np.zeros(len(scores))
    low, high = _median(scores[among]), float(scores[among].max())
    if high <= low:
        return np.zeros(len(scores))
    return np.clip((scores - low) / (high - low), 0.0, 1.0)


def _median(values: np.ndarray) -> float:
    """`np.median`'s value (the mean of the middle one or two), without the import of
    `numpy.ma` its NaN check costs a run (15 ms)."""
    part = np.partition(values, [(len(values) - 1) // 2, len(values) // 2])
    return float(part[(len(values) - 1) // 2:len(values) // 2 + 1].mean())


def fuse(signals: dict[str, np.ndarray], weights: dict[str, float], among: np.ndarray) -> np.ndarray:
    return sum(weights[name] * normalised(values, among) for name, values in signals.items())


def marked_words(texts: list[str]) -> set[str]:
    """Words never written as a plain lower-case word: names, identifiers (`parse_header`,
    `CamelCase`), numbers, codes. Scripts without case mark nothing."""
    seen, plain = set(), set()
    for text in texts:
        for word in scripts.words(text):
            seen.add(word.lower())
            if word.isalpha() and (word.islower() or scripts.is_wide(word[0])):
                plain.add(word)
    return seen - plain


@dataclass(frozen=True)
class Vocabulary:
    """What the units' words say about each word: how many units hold it, whether it is
    rare (held by at most `RARE_SHARE` of the `n_units`) and whether it is marked."""

    document_frequency: Counter
    rare: set[str]
    marked: set[str]

    n_units: int

    @classmethod
    def of(cls, unit_texts: list[str], unit_words: list[Counter]) -> "Vocabulary":
        frequency = Counter(word for counts in unit_words for word in counts)
        limit = max(2, RARE_SHARE * len(unit_words))
        return cls(frequency, {w for w, df in frequency.items() if df <= limit},
                   marked_words(unit_texts), len(unit_words))

    def held_by_few(self, candidates: set[str], share: float) -> set[str]:
        """The `candidates` that some unit holds, but at most `share` of them (or two)."""
        limit = max(2, share * self.n_units)
        return {w for w in candidates if 0 < self.document_frequency[w] <= limit}

    def specificity(self, word: str) -> float:
        """A marked word before any plain one, then the fewer units hold it the better."""
        return (word in self.marked) + 1 / self.document_frequency[word]

    def most_specific_held(self, unit_words: list[Counter], wanted: set[str]) -> np.ndarray:
        """Per unit, the specificity of the most specific `wanted` word it holds (0: none)."""
        return np.array([max((self.specificity(w) for w in wanted if w in counts), default=0.0)
                         for counts in unit_words])


def hop_words(text: str, known: set[str], vocabulary: Vocabulary) -> list[str]:
    """What a seed unit adds to the link words: from its sentence that holds the most
    rare `known` words, the `HOP_TERMS` most specific rare words that some other unit
    holds too (a word found nowhere else leads nowhere). Nothing when no sentence holds
    one: a unit found by the draft alone leads by no word."""
    linked = [(len(set(words(sentence)) & known & vocabulary.rare), sentence)
              for sentence in SENTENCE_END.split(text)]
    links, sentence = max(linked, key=lambda pair: pair[0], default=(0, ""))
    if not links:
        return []
    fresh = {w for w in words(sentence) if w not in known and w in vocabulary.rare
             and vocabulary.document_frequency[w] > 1}
    return sorted(fresh, key=lambda w: (-vocabulary.specificity(w), w))[:HOP_TERMS]


def link_words(unit_texts: list[str], unit_words: list[Counter], asked: set[str],
               vocabulary: Vocabulary, order: np.ndarray, skipped: set[int]) -> set[str]:
    """The words the hops find from the question's (see the module docstring). `order`
    breaks ties between seeds (the better unit so far first); units in `skipped` seed
    nothing."""
    seeded, links = set(skipped), set()
    leads = vocabulary.most_specific_held(unit_words, asked & vocabulary.rare)
    for _ in range(HOPS):
        found: set[str] = set()
        seeds = 0
        for unit in np.lexsort((order, -leads))[:HOP_CANDIDATES].tolist():
            if seeds == HOP_SEEDS or leads[unit] <= 0:
                break
            if unit in seeded:
                continue
            taken = hop_words(unit_texts[unit], asked | links, vocabulary)
            if taken:
                seeded.add(unit)
                seeds += 1
                found.update(taken)
        if not found:
            break
        links |= found
        leads = vocabulary.most_specific_held(unit_words, found)
    return links


def unit_scores(scorer: str, *, unit_texts: list[str], required: list[bool], query: str | None,
                attention: np.ndarray, surprise: np.ndarray | None,
                priors: dict[str, np.ndarray] | None = None, groups: np.ndarray | None = None,
                paths: list[str | None] | None = None,
                secondary: np.ndarray | None = None, named: frozenset[str] = frozenset(),
                broken: frozenset[str] = frozenset(),
                definition_names: list[str] | None = None,
                identities: list[str] | None = None,
                lineages: list[str] | None = None,
                symbols: graph.SymbolGraph | None = None) -> np.ndarray:
    """Every unit's score under the named scorer (see the module docstring).

    `required` units are kept whatever they score (head, tail, the question): they take
    no part in normalising and seed no hop. Without a query the lexical signal is empty
    and attention decides. `priors` are the task's own signals (`records.PRIORS`),
    `groups` each unit's record (-1: none), `paths` each unit's file (its words count
    as the unit's), `secondary` marks units in tests, docs and changelogs, and `named`
    are identifiers the task names beside the question (the functions a diff changes),
    `broken` those of them whose callers must change;
    `definition_names` are the names of the definitions whose signatures each unit
    holds, `identities` the values that name each unit's record, `lineages` (at a
    record's first unit) those that name the records it lies in, and `symbols`
    the code's symbol graph.
    """
    if scorer == "attention":
        return attention
    if scorer == "surprise":
        return surprise
    asked_terms = set(terms.terms(" ".join([query or "", *sorted(named)])))
    lexical = bm25(terms.aligned(terms.bags(unit_texts, paths), asked_terms), asked_terms)
    if scorer == "lexical":
        return lexical
    among = ~np.asarray(required, dtype=bool)
    signals = {"attention": attention, "lexical": lexical,
               **{name: values for name, values in (priors or {}).items() if values.any()}}
    if groups is not None and (groups >= 0).any():
        signals["record"] = group_best(lexical, groups)
        if identities is not None and any(identities):
            signals["identity"] = identity_hits(identities, lineages, groups, asked_terms,
                                                query or "")
    if definition_names is not None and asked_terms and any(definition_names):
        signals["defines"] = name_match(definition_names, asked_terms)
    if symbols is not None:
        weights = seeds(symbols.names, asked_terms, named | set(words(query or "")))
        if weights.any():
            signals["graph"] = symbols.unit_ranks(weights)
    if named:
        # the changed symbols' references (call sites, imports, tests) are what a review
        # follows: in tests too, so no place weighs less
        signals["references"] = references(unit_texts, named, broken)
        secondary = None
    fused = _placed(fuse(signals, WEIGHTS, among), secondary, asked_terms)
    asked = set(words(" ".join([query or "", *sorted(named)])))
    if not asked:
        return fused
    # an id asked for by its start (a commit's short hash) links to the whole id
    unit_words = terms.aligned([Counter(words(text)) for text in unit_texts],
                               {word for word in asked if not word.isalpha()})
    vocabulary = Vocabulary.of(unit_texts, unit_words)
    held = vocabulary.held_by_few(asked, ASKED_SHARE) | link_words(
        unit_texts, unit_words, asked, vocabulary, -fused, set(np.flatnonzero(~among).tolist()))
    if not held:
        return fused
    signals["links"] = vocabulary.most_specific_held(unit_words, held)
    return _placed(fuse(signals, WEIGHTS, among), secondary, asked_terms)


def references(unit_texts: list[str], names: frozenset[str],
               broken: frozenset[str] = frozenset()) -> np.ndarray:
    """Per unit, the `names` it writes as whole identifiers, each counting 1 if it is
    `broken` (or none is) and `UNBROKEN_SHARE` otherwise."""
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, sorted(names))) + r")(?!\w)")
    share = UNBROKEN_SHARE if broken else 1.0
    return np.array([sum(1.0 if name in broken else share for name in set(pattern.findall(text)))
                     for text in unit_texts], dtype=np.float64)


def name_match(names: list[str], asked_terms: set[str]) -> np.ndarray:
    """Per unit, the largest share of a defined name's words that the question asks
    about (`want_bytes` for a question about bytes: 0.5), the rarer of such names first:
    a question in plain words about how something works names it in its own words."""
    shares = np.zeros(len(names))
    for index, held in enumerate(names):
        for name in held.split():
            parts = [term for term in terms.word_terms(name) if term != name.lower()]
            if parts:
                shares[index] = max(shares[index], len(set(parts) & asked_terms) / len(set(parts)))
    return shares


def seeds(names: list[str], asked_terms: set[str], exact: set[str]) -> np.ndarray:
    """Where the symbol graph's walk restarts: per node, 1 for a name in `exact` (a
    changed name, a word of the question: `iter` in "BaseRetrying.iter"), else the share
    of the name's words the question asks about (`stop_after_attempt` for "when does it
    stop?": 1/2, "after" being a function word); 0 for a part's top level (no name)."""
    weights = np.zeros(len(names))
    for index, name in enumerate(names):
        if not name:
            continue
        if name in exact or name.lower() in exact:
            weights[index] = 1.0
            continue
        parts = set(terms.word_terms(name))
        if len(parts) > 1:
            parts.discard(name.lower())  # a compound's whole name: its parts are the words
        if parts:
            weights[index] = len(parts & asked_terms) / len(parts)
    return weights


def identity_hits(identities: list[str], lineages: list[str] | None, groups: np.ndarray,
                  asked_terms: set[str], question: str = "") -> np.ndarray:
    """Per unit, how surely the question names its record: 0 unless one of the record's
    own names shares a term with the question; else the asked terms among its own names
    and those of the record it lies in (`lineages`), plus one for each of those names
    the question writes whole (`requests`, not a URL that holds the word). So "terminado,
    a dependency of jupyter_server" ranks the terminado in jupyter_server's record above
    every other terminado and above jupyter_server itself."""
    record = np.where(groups >= 0, groups, np.arange(len(identities)))
    own_terms: dict[int, set[str]] = {}
    own_names: dict[int, set[str]] = {}
    for index, bag in enumerate(terms.aligned(terms.bags(identities), asked_terms)):
        if bag:
            first = int(record[index])
            own_terms.setdefault(first, set()).update(asked_terms & bag.keys())
            own_names.setdefault(first, set()).update(identities[index].lower().split())
    above = terms.aligned(terms.bags(lineages), asked_terms) if lineages else None
    written = set(WORD_RUN.findall(question.lower()))
    count = {}
    for first, hits in own_terms.items():
        if not hits:
            continue
        names = own_names[first] | set(lineages[first].lower().split() if lineages else ())
        hits = hits | (asked_terms & above[first].keys() if above else set())
        count[first] = len(hits) + sum(1 for name in names if name in written)
    return np.array([count.get(int(first), 0) for first in record], dtype=np.float64)


def group_best(scores: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each unit's best score in its group (a record), 0 outside any group."""
    best = np.zeros(len(scores))
    inside = groups >= 0
    if inside.any():
        top = np.zeros(int(groups.max()) + 1)
        np.maximum.at(top, groups[inside], scores[inside])
        best[inside] = top[groups[inside]]
    return best


def _placed(fused: np.ndarray, secondary: np.ndarray | None, asked_terms: set[str]) -> np.ndarray:
    """Units in tests, docs and changelogs weigh `SECONDARY_WEIGHT` of the rest, unless
    the question asks about those."""
    if secondary is None or not secondary.any() or asked_terms & PLACE_TERMS:
        return fused
    return np.where(secondary, SECONDARY_WEIGHT * fused, fused)
