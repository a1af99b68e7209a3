"""Rules shared by everything that loads a model or tokenizer by name.

A name that can only be a path is never sent to a model hub (a typo in a path should
fail at once, not after the hub client's retries), and transformers' own progress bars,
notices and Python warnings are kept off our stderr while loading (and while the draft
runs, `draft.py`), then restored for the caller.

A hub id loads from the local Hugging Face cache first, without touching the network:
offline or air-gapped machines then work with what they have, and quickly. Only a
model that is not cached is fetched, and when the hub cannot be reached at all we say
so at once, instead of after the hub client's ~50 s of retries.

A draft folder may hold `crossprefill.yaml`, the scoring defaults its maker measured
best for it (so far `lookahead`); a profile or option that names a value wins.

Nothing here imports torch or transformers at module level: resolving a draft's
location, fingerprint and defaults must stay cheap, because a score-cache hit needs
only that.
"""

import contextlib
import hashlib
import json
import os
import socket
import warnings
from importlib import resources
from pathlib import Path
from typing import Callable, Iterator, TypeVar
from urllib.parse import urlsplit

from crossprefill_cli.errors import ModelLoadError

BUILTIN = "builtin"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
HUB_CONNECT_TIMEOUT = 3.0
MESSAGE_CHARS = 240  # a library's error message beyond this is cut, to stay one readable line
DRAFT_DEFAULTS_FILE = "crossprefill.yaml"
# What a draft that names nothing gets: the values of Upasani et al.
PAPER_DRAFT_DEFAULTS = {"lookahead": 8}
# transformers tokenizer classes that are a `tokenizer.json` and nothing more
PLAIN_TOKENIZER_CLASSES = ("TokenizersBackend", "PreTrainedTokenizerFast")
Loaded = TypeVar("Loaded")


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
        if not (location / "config.json").is_file():
            raise ModelLoadError(f"draft {spec}: not a model directory (it has no config.json)")
        return str(location)
    return spec


def check_draft_available(spec: str) -> None:
    """Fail at once on a draft that cannot load (see `check_hub_model`), before any
    model code is imported."""
    if draft_location(spec) == spec and not looks_like_path(spec):
        check_hub_model(spec, ("config.json",), what=f"draft {spec}")


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


def draft_config(spec: str) -> dict | None:
    """A draft's `config.json`, read without loading the model: from its folder, or from
    the local Hugging Face cache for a hub id; None when there is none to read."""
    location = draft_location(spec)
    if Path(location).is_dir():
        path = Path(location) / "config.json"
    else:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(location, "config.json")
        if not isinstance(cached, str):
            return None
        path = Path(cached)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def context_length_in(config: dict) -> int:
    """The positions a model's config says it reads (2048 when it says nothing)."""
    return int(config.get("max_position_embeddings") or config.get("n_positions") or 2048)


def draft_defaults(spec: str) -> dict[str, int]:
    """The scoring defaults of a draft: its folder's `crossprefill.yaml` over the paper's.

    Hub ids have no such file here and get the paper's values.
    """
    folder = Path(draft_location(spec))
    path = folder / DRAFT_DEFAULTS_FILE
    if not path.is_file():
        return dict(PAPER_DRAFT_DEFAULTS)
    import yaml  # here: the target tokenizer's process imports this module, not YAML (27 ms)

    try:
        named = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ModelLoadError(f"draft {spec}: cannot read {DRAFT_DEFAULTS_FILE}: {error}") from None
    named = {} if named is None else named
    if not isinstance(named, dict) or set(named) - set(PAPER_DRAFT_DEFAULTS):
        raise ModelLoadError(f"draft {spec}: {DRAFT_DEFAULTS_FILE} may only set "
                             f"{', '.join(PAPER_DRAFT_DEFAULTS)}")
    for name, value in named.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ModelLoadError(f"draft {spec}: {DRAFT_DEFAULTS_FILE}: {name} must be a "
                                 f"positive integer, got {value!r}")
    return {**PAPER_DRAFT_DEFAULTS, **named}


def plain_tokenizer_file(spec: str) -> str | None:
    """The `tokenizer.json` of a local draft whose transformers tokenizer is that file
    and nothing more (no class that rewrites it on load), else None."""
    return plain_tokenizer_in(Path(draft_location(spec)))


def plain_tokenizer_in(folder: Path) -> str | None:
    """The `tokenizer.json` in `folder` when the folder's transformers tokenizer is that
    file and nothing more, else None (see `plain_tokenizer_file`)."""
    tokenizer, config = folder / "tokenizer.json", folder / "tokenizer_config.json"
    if not (tokenizer.is_file() and config.is_file()):
        return None
    try:
        named = json.loads(config.read_text(encoding="utf-8")).get("tokenizer_class")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return None
    return str(tokenizer) if named in PLAIN_TOKENIZER_CLASSES else None


def looks_like_path(spec: str) -> bool:
    """True for names that can only mean a local path (never sent to a model hub)."""
    return (spec.startswith(("/", "./", "../", "~", "."))
            or "\\" in spec or spec.count("/") > 1 or Path(spec).exists())


def load_pretrained(loader: Callable[..., Loaded], location: str, *, what: str,
                    **options) -> Loaded:
    """`loader(location, **options)` (a `from_pretrained`), quietly, from the local cache
    when it can; any failure becomes `ModelLoadError("cannot load {what}: ...")`."""
    try:
        with quiet_libraries():
            return _cached_or_fetched(loader, location, **options)
    except ModelLoadError as error:
        raise ModelLoadError(f"cannot load {what}: {error}") from None
    except Exception as error:  # transformers raises OSError, ValueError, KeyError...
        raise ModelLoadError(f"cannot load {what}: {first_line(error)}") from None


def load_tokenizer(location: str, *, what: str):
    """A transformers tokenizer from a folder or hub id (see `load_pretrained`)."""
    from transformers import AutoTokenizer

    return load_pretrained(AutoTokenizer.from_pretrained, location, what=what,
                           trust_remote_code=False)


def _cached_or_fetched(loader: Callable[..., Loaded], location: str, **options) -> Loaded:
    if Path(location).is_dir():
        return loader(location, **options)
    try:
        return loader(location, local_files_only=True, **options)
    except OSError:  # not (completely) in the cache: fetch it
        pass
    check_hub_reachable(location)
    return loader(location, **options)


def check_hub_model(repo_id: str, files: tuple[str, ...], *, what: str) -> None:
    """Fail at once on a hub id that cannot load here: one not in the local cache (none
    of `files` there) while the hub cannot be reached, or no valid id at all."""
    from huggingface_hub import try_to_load_from_cache

    try:
        if any(isinstance(try_to_load_from_cache(repo_id, name), str) for name in files):
            return
    except ValueError:  # huggingface_hub's HFValidationError: not a repository id
        raise ModelLoadError(f"cannot load {what}: {repo_id!r} is neither a local path nor "
                             "a Hugging Face id (owner/name)") from None
    try:
        check_hub_reachable(repo_id)
    except ModelLoadError as error:
        raise ModelLoadError(f"cannot load {what}: {error}") from None


def check_hub_reachable(repo_id: str) -> None:
    """Fail at once when the Hugging Face hub cannot be reached (no retries)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise ModelLoadError(f"{repo_id} is not in the local Hugging Face cache and "
                             "HF_HUB_OFFLINE is set")
    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        return  # only the proxy knows the way out; let the hub client try
    endpoint = urlsplit(constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname, port), timeout=HUB_CONNECT_TIMEOUT).close()
    except OSError as error:
        raise ModelLoadError(f"{repo_id} is not in the local Hugging Face cache and "
                             f"{endpoint.hostname} cannot be reached ({first_line(error)}); "
                             "offline, pass a local model directory") from None


def first_line(error: BaseException) -> str:
    """The error's message as one line (libraries' messages run over several, and their
    first line alone may end in a colon), shortened when it is long."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS - 1].rstrip() + "…"


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Keep transformers' log lines and progress bars and every Python warning
    (torch's and transformers' deprecations) off stderr; the caller's settings come back."""
    from transformers.utils import logging

    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()
