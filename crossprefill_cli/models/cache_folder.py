"""Where crossprefill keeps what it computed once: `$CROSSPREFILL_CACHE_DIR`, else
`$XDG_CACHE_HOME/crossprefill`, else `~/.cache/crossprefill`. The score cache
(`cache`) and the target tokenizers' ready-made tables (`target`) live there; this
module imports nothing, so the target's child process stays light."""

import os
from pathlib import Path


def default_cache_dir() -> Path:
    if os.environ.get("CROSSPREFILL_CACHE_DIR"):
        return Path(os.environ["CROSSPREFILL_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "crossprefill"
