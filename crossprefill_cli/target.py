"""Target tokenizers: the tokens the budget is counted in.

A target is named the way users know it: a tiktoken encoding (`o200k_base`), an
OpenAI model name resolved by tiktoken (`gpt-4o`), or a Hugging Face tokenizer (hub id
or local directory). Everything is reduced to one operation, counting the tokens of
many texts at once, because selection needs the cost of every chunk: Hugging Face
tokenizers encode a batch an order of magnitude faster than a Python loop, while
tiktoken's own batch call starts a thread pool and one future per text, nine times
slower here than a plain loop over its Rust encoder.

Counting never adds special tokens (no BOS): the budget is about the text itself.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import tiktoken

from .errors import ModelLoadError
from .loading import load_pretrained, looks_like_path

DEFAULT_TARGET = "o200k_base"
# the rank file each tiktoken encoding reads (gpt2 reads two others), and from where
TIKTOKEN_RANK_FILES = {"o200k_base": "o200k_base", "o200k_harmony": "o200k_base",
                       "cl100k_base": "cl100k_base", "p50k_base": "p50k_base",
                       "p50k_edit": "p50k_base", "r50k_base": "r50k_base"}
TIKTOKEN_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"


@dataclass(frozen=True)
class TargetTokenizer:
    """A named token counter."""

    name: str
    count_batch: Callable[[Sequence[str]], list[int]]

    def count(self, text: str) -> int:
        return self.count_batch([text])[0]


def load_target(spec: str) -> TargetTokenizer:
    """Resolve a target name to a token counter, or raise `ModelLoadError`."""
    if spec in tiktoken.list_encoding_names():
        return _tiktoken_target(spec, spec)
    try:
        encoding_name = tiktoken.encoding_name_for_model(spec)
    except KeyError:
        return hf_target(spec)
    return _tiktoken_target(spec, encoding_name)


def _tiktoken_target(name: str, encoding_name: str) -> TargetTokenizer:
    try:
        encoding = tiktoken.get_encoding(encoding_name)
    except Exception as error:  # tiktoken raises requests/OS/value errors alike
        raise ModelLoadError(
            f"cannot load tiktoken encoding {encoding_name} for target {name} "
            f"({type(error).__name__}); {_offline_hint(encoding_name)}") from None
    label = name if name == encoding_name else f"{name} ({encoding_name})"

    def count_batch(texts: Sequence[str]) -> list[int]:
        return [len(encoding.encode_ordinary(text)) for text in texts]

    return TargetTokenizer(label, count_batch)


def _offline_hint(encoding_name: str) -> str:
    """Where tiktoken looks for an encoding's file: $TIKTOKEN_CACHE_DIR, under the sha1
    of the file's download address."""
    if encoding_name not in TIKTOKEN_RANK_FILES:
        return "offline, put its files in $TIKTOKEN_CACHE_DIR"
    url = TIKTOKEN_URL.format(TIKTOKEN_RANK_FILES[encoding_name])
    return (f"offline, download {url} elsewhere and put it in $TIKTOKEN_CACHE_DIR "
            f"named {hashlib.sha1(url.encode()).hexdigest()}")


def check_target_path(spec: str) -> None:
    """Fail at once on a target that is a path to nothing (before any loading)."""
    if looks_like_path(spec) and not Path(spec).expanduser().exists():
        raise ModelLoadError(f"target tokenizer {spec}: no such file or directory")


def hf_target(spec: str) -> TargetTokenizer:
    """A Hugging Face tokenizer from a local directory or a hub id."""
    check_target_path(spec)
    from transformers import AutoTokenizer

    location = str(Path(spec).expanduser()) if looks_like_path(spec) else spec
    tokenizer = load_pretrained(AutoTokenizer.from_pretrained, location,
                                what=f"target tokenizer {spec}", trust_remote_code=False)
    return tokenizer_target(spec, tokenizer)


def tokenizer_target(name: str, tokenizer) -> TargetTokenizer:
    """Count with an already loaded transformers tokenizer (fast backend when it has one)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        def count_batch(texts: Sequence[str]) -> list[int]:
            return [len(encoding.ids) for encoding in
                    backend.encode_batch(list(texts), add_special_tokens=False)]
    else:
        def count_batch(texts: Sequence[str]) -> list[int]:
            return [len(tokenizer.encode(text, add_special_tokens=False)) for text in texts]
    return TargetTokenizer(name, count_batch)
