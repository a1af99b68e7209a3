"""Where crossprefill keeps what it computed once: `$CROSSPREFILL_CACHE_DIR`, else
`$XDG_CACHE_HOME/crossprefill`, else `~/.cache/crossprefill`. The score cache
(`cache`) and the target tokenizers' ready-made tables (`target`) live there, each
written by `store`; this module imports nothing heavy, so the target's child process
stays light."""

import os
import tempfile
from pathlib import Path


def default_cache_dir() -> Path:
    if os.environ.get("CROSSPREFILL_CACHE_DIR"):
        return Path(os.environ["CROSSPREFILL_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "crossprefill"


def store(path: Path, data: bytes) -> bool:
    """Write a cache entry so that readers see all of it or none (a temporary file
    renamed into place); False, and nothing left behind, when the folder cannot take it:
    a cache that cannot be written is simply not used."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    except OSError:
        return False
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except OSError:
        Path(temporary).unlink(missing_ok=True)
        return False
    return True
