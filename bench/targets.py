"""The target tokenizer benchmarks count in: o200k_base, offline when possible.

Benchmarks never download. When the project's fixture copy of o200k_base sits in
../shared/fixtures, tiktoken is pointed at it; otherwise the draft's own tokenizer
counts (the same fallback the CLI uses), and the tables say which was used.
"""

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from crossprefill_cli.errors import ModelLoadError
from crossprefill_cli.models.target import load_target, tokenizer_target

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "tiktoken" / "o200k_base.tiktoken"
URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"


def bench_target(draft):
    if FIXTURE.exists() and "TIKTOKEN_CACHE_DIR" not in os.environ:
        cache = Path(tempfile.mkdtemp(prefix="crossprefill-tiktoken-"))
        shutil.copy(FIXTURE, cache / hashlib.sha1(URL.encode()).hexdigest())
        os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    try:
        return load_target("o200k_base")
    except ModelLoadError:
        return tokenizer_target(f"draft tokenizer ({draft.name})", draft.tokenizer)
