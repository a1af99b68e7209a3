"""A draft's token ids and token starts, from a fast tokenizer's offsets.

`Draft.encode` (the loaded model's tokenizer) and `DraftSource.encode` (its
`tokenizer.json` alone, before the model loads) must give the same arrays, so both go
through `ids_and_starts`.
"""

import functools
from typing import Sequence

import numpy as np


def ids_and_starts(ids: Sequence[int],
                   offsets: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and the character offset where each token starts."""
    token_ids = np.asarray(ids, dtype=np.int64)
    starts = np.asarray([start for start, _ in offsets], dtype=np.int64)
    # Byte-level tokens inside one multi-byte character share its offsets; keep
    # starts non-decreasing so that chunk edges stay ordered.
    return token_ids, np.maximum.accumulate(starts) if len(starts) else starts


@functools.lru_cache(maxsize=4)
def plain_tokenizer(path: str):
    """The `tokenizers.Tokenizer` of a `tokenizer.json` (loaded once per process)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(path)


def encode_plain(path: str, text: str) -> tuple[np.ndarray, np.ndarray]:
    """`ids_and_starts` of `text` by the `tokenizer.json` at `path`, no special tokens."""
    encoded = plain_tokenizer(path).encode(text, add_special_tokens=False)
    return ids_and_starts(encoded.ids, encoded.offsets)
