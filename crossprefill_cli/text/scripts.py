"""Scripts written without spaces: Chinese, Japanese (and Korean, which spaces its words
but glues particles to them).

English words are runs of word characters; in Chinese or Japanese such a run is a whole
clause ("张伟记住的发射代码是510003"), so a question and the sentence that answers it
share no word at all. `words` cuts text the way the lexical signals need it:

- a run of ideographs, kana or Hangul becomes its overlapping character pairs
  (`bigrams`: 张伟 伟记 记住 住的 ...), one character alone stays itself. Pairs are what
  Lucene's CJK analyser and most search engines index for these scripts: a word of two
  or more characters is always among them, no dictionary is needed, and Chinese,
  Japanese kanji and kana, and Hangul are handled alike. Dictionary segmenters (jieba,
  janome, SudachiPy) were measured beside them on the development cases (`python -m
  bench.languages`): none kept more needles at 12.5% or 5% keep, and each costs tens
  to hundreds of milliseconds per compress (docs/languages.md);
- digits, Latin letters and identifiers in such text stay whole words
  (`510003`, `gzip`, `parse_header`), as in English text.

A wide letter counts `WIDE_WIDTH` characters where a length bound is written in
characters (`width`): it says about as much as three Latin letters, and costs a
byte-level draft three tokens.

Sentences end at `。！？` as well as `.!?` followed by a space, and questions end at a
full-width `？` too (`SENTENCE_END_MARKS`, `QUESTION_MARKS`).
"""

import re

# Ideographs (CJK Unified, Extension A, Compatibility), kana (hiragana, katakana and
# the half-width forms) and the iteration mark 々: letters written without spaces, so a
# text may be cut between any two of them.
UNSPACED_LETTERS = ("\u3005\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\u3400-\u4dbf"
                    "\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f")
# ...and Hangul syllables and jamo: Korean spaces its words, but glues particles to them
WIDE_LETTERS = UNSPACED_LETTERS + "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af"
WIDE_RUN = re.compile(f"[{WIDE_LETTERS}]+")
UNSPACED = re.compile(f"[{UNSPACED_LETTERS}]")
# a word: a run of wide letters, or a run of other word characters
WORD = re.compile(f"[{WIDE_LETTERS}]+|[^\\W{WIDE_LETTERS}]+")
PLAIN_WORD = re.compile(r"\w+")  # the same words in text without wide letters, faster
WIDE_WIDTH = 3
SENTENCE_END_MARKS = "。！？"
QUESTION_MARKS = "?？"
# closing quotes and brackets that may follow a sentence's end mark
CLOSERS = "\"')]」』”’）】〕"


def is_wide(character: str) -> bool:
    """True for an ideograph, a kana or a Hangul letter (see `WIDE_LETTERS`)."""
    return WIDE_RUN.fullmatch(character) is not None


def is_unspaced(character: str) -> bool:
    """True for an ideograph or a kana: a text may be cut right before or after it."""
    return UNSPACED.fullmatch(character) is not None


def width(text: str) -> int:
    """The length of `text`, a wide letter counting `WIDE_WIDTH`."""
    return len(text) + (WIDE_WIDTH - 1) * sum(len(run) for run in WIDE_RUN.findall(text))


def start_within(text: str, start: int, end: int, limit: int) -> int:
    """The first position from `start` on at which text[position:end] is at most
    `limit` wide."""
    total = 0
    for position in range(end - 1, start - 1, -1):
        total += WIDE_WIDTH if is_wide(text[position]) else 1
        if total > limit:
            return position + 1
    return start


def bigrams(run: str) -> list[str]:
    """The overlapping character pairs of a run of wide letters (itself when one long)."""
    if len(run) < 2:
        return [run]
    return [run[index:index + 2] for index in range(len(run) - 1)]


def words(text: str) -> list[str]:
    """The words of `text` (see the module docstring), in order, case kept."""
    if WIDE_RUN.search(text) is None:  # most text
        return PLAIN_WORD.findall(text)
    found = []
    for word in WORD.findall(text):
        found.extend(bigrams(word) if is_wide(word[0]) else [word])
    return found
