"""Terms: the words a question and a unit share once identifiers and inflections are
undone.

Code and logs write words a question writes differently: `_post_stop_check_actions`
holds "stop", "check" and "actions"; `retryIfException` holds "retry"; a log says
`FAILED` where the question says "failing" or "failure". A term is a word's Snowball
stem (PyStemmer's English stemmer), lowercased; an identifier (`snake_case`,
`camelCase`, `HTTPServer2`) gives its whole self and the stem of each of its parts, so
a question naming `parse_header` still matches it exactly. In Chinese and Japanese a
term is a pair of characters, unstemmed (`text.scripts`).

Stems that the stemmer leaves apart though one is the other's start ("fail" and
"failur", "config" and "configur") are joined: `aligned` renames a unit term to the
question term it starts with or that starts it, both at least `MIN_PREFIX` letters.

Function words of questions ("why", "does", "the", ...) are no terms: they would only
match prose by chance.
"""

import re
from collections import Counter
from functools import lru_cache

import Stemmer

from crossprefill_cli.text import scripts

MIN_PREFIX = 4
# Words whose terms are remembered: several inputs' vocabularies (a 32k-token input of
# prose or code has about 3,500 distinct words), about 6 MiB when full. At 65,536 a
# long-running server's cache grew to 23 MiB; at 4,096 an input took about 4 ms more.
WORD_CACHE = 16384
PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z0-9]+|[A-Z0-9]+")
FUNCTION_WORDS = frozenset("""
a about above after again all am an and any are as at be because been before being below
between both but by can could did do does doing done down during each few for from further
had has have having he her here hers him his how i if in into is it its itself just let me
more most my no nor not now of off on once only or other our out over own same she should
so some such than that the their them then there these they this those through to too
under until up very was we were what when where which while who whom why will with would
you your please tell explain show find give list describe happen happened happens
""".split())


@lru_cache(maxsize=1)
def _stemmer():
    return Stemmer.Stemmer("english")


@lru_cache(maxsize=WORD_CACHE)
def word_terms(word: str) -> tuple[str, ...]:
    """The terms of one word (see the module docstring)."""
    if scripts.is_wide(word[0]):
        return (word,)
    parts = PART.findall(word) if not (word.isalpha() and word.islower()) else [word]
    pieces = [part.lower() for part in parts if part]
    stems = _stemmer().stemWords(pieces)
    whole = word.lower()
    found = [stem for piece, stem in zip(pieces, stems) if piece not in FUNCTION_WORDS]
    if len(pieces) > 1:
        found.append(whole)
    return tuple(found)


def terms(text: str) -> list[str]:
    return [term for word in scripts.words(text) for term in word_terms(word)]


def bags(texts: list[str], extra: list[str] | None = None) -> list[Counter]:
    """Each text's terms, counted, with the terms of `extra[i]` (a file's path) once each."""
    result = [Counter(terms(text)) for text in texts]
    if extra is not None:
        for bag, more in zip(result, extra):
            if more:
                bag.update(set(terms(more)))
    return result


def aligned(unit_bags: list[Counter], asked: set[str]) -> list[Counter]:
    """The bags with every term that starts an asked term, or that an asked term starts,
    renamed to that asked term (see the module docstring); to the longest such, then the
    first in sorted order, when several are (never to one picked by a set's order, which
    changes with each process's hash seed)."""
    vocabulary = {term for bag in unit_bags for term in bag}
    candidates = sorted((term for term in asked if len(term) >= MIN_PREFIX),
                        key=lambda term: (-len(term), term))
    renames = {}
    for term in vocabulary - asked:
        if len(term) < MIN_PREFIX:
            continue
        for question_term in candidates:
            if term.startswith(question_term) or question_term.startswith(term):
                renames[term] = question_term
                break
    if not renames:
        return unit_bags
    result = []
    for bag in unit_bags:
        if renames.keys() & bag.keys():
            renamed = Counter()
            for term, count in bag.items():
                renamed[renames.get(term, term)] += count
            bag = renamed
        result.append(bag)
    return result
