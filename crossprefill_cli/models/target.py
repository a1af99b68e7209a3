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
import marshal
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import tiktoken

from crossprefill_cli.errors import ModelLoadError
from crossprefill_cli.models.cache_folder import default_cache_dir, store
from crossprefill_cli.models.loading import (check_hub_model, load_tokenizer, looks_like_path,
                                             plain_tokenizer_in)

DEFAULT_TARGET = "o200k_base"
# the rank file each tiktoken encoding reads (gpt2 reads two others), and from where
TIKTOKEN_RANK_FILES = {"o200k_base": "o200k_base", "o200k_harmony": "o200k_base",
                       "cl100k_base": "cl100k_base", "p50k_base": "p50k_base",
                       "p50k_edit": "p50k_base", "r50k_base": "r50k_base"}
# a Hugging Face tokenizer folder holds at least one of these
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
TIKTOKEN_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
# the layout of the copies `_encoding` keeps (a new one is written when this changes)
TIKTOKEN_TABLES_FORMAT = 1


@dataclass(frozen=True)
class TargetTokenizer:
    """A named token counter."""

    name: str
    count_batch: Callable[[Sequence[str]], list[int]]

    def count(self, text: str) -> int:
        return self.count_batch([text])[0]


def load_target(spec: str) -> TargetTokenizer:
    """Resolve a target name to a token counter, or raise `ModelLoadError`."""
    encoding_name = tiktoken_encoding(spec)
    if encoding_name is None:
        return hf_target(spec)
    return _tiktoken_target(spec, encoding_name)


def _tiktoken_target(name: str, encoding_name: str) -> TargetTokenizer:
    try:
        encoding = _encoding(encoding_name)
    except Exception as error:  # tiktoken raises requests/OS/value errors alike
        raise ModelLoadError(
            f"cannot load tiktoken encoding {encoding_name} for target {name} "
            f"({type(error).__name__}); {_offline_hint(encoding_name)}") from None

    def count_batch(texts: Sequence[str]) -> list[int]:
        return [len(encoding.encode_ordinary(text)) for text in texts]

    return TargetTokenizer(tiktoken_label(name, encoding_name), count_batch)


def _encoding(encoding_name: str) -> tiktoken.Encoding:
    """tiktoken's encoding, built from a copy of its tables in the cache folder when one
    is there (made on first use): tiktoken parses o200k_base's 200k base64 ranks in
    0.2 s, marshal reads them in 0.06 s, a third of what building the target costs."""
    path = default_cache_dir() / "tiktoken" / (
        f"{encoding_name}-{tiktoken.__version__}-{TIKTOKEN_TABLES_FORMAT}.marshal")
    try:
        return tiktoken.Encoding(encoding_name, **marshal.loads(path.read_bytes()))
    except (OSError, EOFError, ValueError, TypeError):  # none yet, or unreadable
        pass
    encoding = tiktoken.get_encoding(encoding_name)
    try:  # tiktoken's own attributes; a release without them just gets no copy
        tables = dict(pat_str=encoding._pat_str, mergeable_ranks=encoding._mergeable_ranks,
                      special_tokens=encoding._special_tokens)
    except AttributeError:
        return encoding
    store(path, marshal.dumps(tables))
    return encoding


def _offline_hint(encoding_name: str) -> str:
    """Where tiktoken looks for an encoding's file: $TIKTOKEN_CACHE_DIR, under the sha1
    of the file's download address."""
    if encoding_name not in TIKTOKEN_RANK_FILES:
        return "offline, put its files in $TIKTOKEN_CACHE_DIR"
    url = TIKTOKEN_URL.format(TIKTOKEN_RANK_FILES[encoding_name])
    return (f"offline, download {url} elsewhere and put it in $TIKTOKEN_CACHE_DIR "
            f"named {hashlib.sha1(url.encode()).hexdigest()}")


def check_target_name(spec: str) -> None:
    """Fail at once on a target that cannot load, before any tokenizer is built: a path
    to nothing, a bare name tiktoken does not know and no cached tokenizer has, or a hub
    id that is not cached while the hub cannot be reached."""
    if tiktoken_encoding(spec) is not None:
        return
    if looks_like_path(spec):
        if not Path(spec).expanduser().exists():
            raise ModelLoadError(f"target tokenizer {spec}: no such file or directory")
        return
    if "/" not in spec and not _cached(spec):
        raise ModelLoadError(
            f"unknown target {spec!r}: not a tiktoken encoding ({', '.join(TIKTOKEN_RANK_FILES)}) "
            "or an OpenAI model name tiktoken knows (gpt-4o, gpt-4, ...), nor a local folder "
            "or a Hugging Face tokenizer id (owner/name)")
    check_hub_model(spec, TOKENIZER_FILES, what=f"target tokenizer {spec}")


def _cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return any(isinstance(try_to_load_from_cache(repo_id, name), str)
                   for name in TOKENIZER_FILES)
    except ValueError:  # not a valid repository id
        return False


def tiktoken_encoding(spec: str) -> str | None:
    """The tiktoken encoding a target name counts with (an encoding's own name, or an
    OpenAI model's encoding), or None for other names."""
    if spec in tiktoken.list_encoding_names():
        return spec
    try:
        return tiktoken.encoding_name_for_model(spec)
    except KeyError:
        return None


def tiktoken_label(name: str, encoding_name: str) -> str:
    """How a tiktoken target is reported: `gpt-4o (o200k_base)`, or just the encoding."""
    return name if name == encoding_name else f"{name} ({encoding_name})"


def hf_target(spec: str) -> TargetTokenizer:
    """A Hugging Face tokenizer from a local directory or a hub id."""
    check_target_name(spec)
    location = str(Path(spec).expanduser()) if looks_like_path(spec) else spec
    # a folder whose tokenizer is its tokenizer.json alone counts without transformers
    plain = plain_tokenizer_in(Path(location)) if Path(location).is_dir() else None
    if plain is not None:
        # here, not at the top: the child building a tiktoken target needs no numpy
        from crossprefill_cli.models.tokens import plain_tokenizer

        return tokenizer_target(spec, plain_tokenizer(plain))
    tokenizer = load_tokenizer(location, what=f"target tokenizer {spec}")
    return tokenizer_target(spec, tokenizer)


def tokenizer_target(name: str, tokenizer) -> TargetTokenizer:
    """Count with an already loaded tokenizer: a `tokenizers.Tokenizer`, or a transformers
    tokenizer (its fast backend when it has one)."""
    from tokenizers import Tokenizer

    backend = tokenizer if isinstance(tokenizer, Tokenizer) \
        else getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        def count_batch(texts: Sequence[str]) -> list[int]:
            return [len(encoding.ids) for encoding in
                    backend.encode_batch(list(texts), add_special_tokens=False)]
    else:
        def count_batch(texts: Sequence[str]) -> list[int]:
            return [len(tokenizer.encode(text, add_special_tokens=False)) for text in texts]
    return TargetTokenizer(name, count_batch)
