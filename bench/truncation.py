"""Truncation baselines: what `ttok -t N` or `mods` do with a prompt that is too long.

- head: the first N target tokens.
- head+tail: the first and the last tokens of the input around one `[...]` line, the
  budget (the delimiter's tokens included) split evenly between the two ends; the head
  alone when the budget cannot hold the delimiter and a token of each end.

Cuts fall where the target's tokens start and end, as ttok does (encode, keep N tokens,
decode), so every kept piece is a verbatim stretch of the input. The kept text is then
counted again, as the target would, and shortened one token at a time until it fits:
re-encoding a cut piece can, rarely, take a token more than the slice it came from.
"""

from typing import Callable

import tiktoken

DELIMITER = "\n[...]\n"

TokenStarts = Callable[[str], list[int]]


def token_starts(spec: str) -> TokenStarts:
    """Character offset of every target token of a text (no special tokens).

    `spec` is a tiktoken encoding name or a Hugging Face tokenizer id or directory,
    the two kinds of target the benchmarks count in.
    """
    if spec in tiktoken.list_encoding_names():
        encoding = tiktoken.get_encoding(spec)
        return lambda text: encoding.decode_with_offsets(encoding.encode_ordinary(text))[1]
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(spec)
    return lambda text: [start for start, _ in tokenizer(
        text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]]


def head(text: str, budget: int, starts: TokenStarts) -> str:
    """The longest token-aligned prefix of `text` that costs at most `budget` tokens."""
    offsets = starts(text)
    keep = min(budget, len(offsets))
    while True:
        piece = text[:offsets[keep]] if keep < len(offsets) else text
        if keep == 0 or len(starts(piece)) <= budget:
            return piece
        keep -= 1


def head_and_tail(text: str, budget: int, starts: TokenStarts) -> str:
    """The first and last tokens of `text` around `DELIMITER`, within `budget` tokens."""
    offsets = starts(text)
    if len(offsets) <= budget:
        return text
    room = budget - len(starts(DELIMITER))
    if room < 2:  # no room for both ends and the delimiter: the head alone
        return head(text, budget, starts)
    front, back = room - room // 2, room // 2
    while True:
        piece = (text[:offsets[front]] + DELIMITER
                 + (text[offsets[len(offsets) - back]:] if back else ""))
        if len(starts(piece)) <= budget:
            return piece
        if front >= back:
            front -= 1
        else:
            back -= 1
