"""Rules shared by everything that loads a model or tokenizer by name.

A name that can only be a path is never sent to a model hub (a typo in a path should
fail at once, not after the hub client's retries), and transformers' own progress bars
and notices are kept off our stderr while loading, then restored for the caller.

Nothing here imports torch or transformers at module level: resolving a draft's
location and fingerprint must stay cheap, because a score-cache hit needs only that.
"""

import contextlib
import hashlib
from importlib import resources
from pathlib import Path
from typing import Iterator

from .errors import ModelLoadError, UsageError

BUILTIN = "builtin"
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


def check_device_and_dtype(device: str, dtype: str) -> None:
    if device not in DEVICES:
        raise UsageError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if dtype not in DTYPES:
        raise UsageError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")


def builtin_path() -> Path:
    return Path(str(resources.files("crossprefill_cli") / "drafts" / BUILTIN))


def draft_location(spec: str) -> str:
    """Where a draft loads from: the bundled folder, a local folder, or a hub id."""
    if spec == BUILTIN:
        if not (builtin_path() / "config.json").is_file():
            raise ModelLoadError("the bundled draft is not part of this build; "
                                 "name a draft model with --draft MODEL")
        return str(builtin_path())
    if looks_like_path(spec):
        location = Path(spec).expanduser()
        if not location.is_dir():
            raise ModelLoadError(f"draft {spec}: no such directory")
        return str(location)
    return spec


def draft_fingerprint(spec: str) -> str:
    """Identifies a draft's weights cheaply (for cache keys), without loading it.

    Local folders: their config plus the size and modification time of weight files.
    Hub ids: the id itself (pass --no-cache after a model is updated on the hub).
    """
    location = draft_location(spec)
    folder = Path(location)
    if not folder.is_dir():
        return f"hub:{location}"
    digest = hashlib.sha256((folder / "config.json").read_bytes()
                            if (folder / "config.json").is_file() else b"")
    for weights in sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES):
        stat = weights.stat()
        digest.update(f"{weights.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return f"dir:{digest.hexdigest()}"


def looks_like_path(spec: str) -> bool:
    """True for names that can only mean a local path (never sent to a model hub)."""
    return (spec.startswith(("/", "./", "../", "~", "."))
            or "\\" in spec or spec.count("/") > 1 or Path(spec).exists())


def first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    from transformers.utils import logging

    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()
