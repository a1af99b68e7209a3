"""The score cache: the draft's reading of an input, kept for re-tuning.

Tuning a keep rate means compressing the same input again and again; only the budget
changes, and the budget does not touch the draft. So the draft's output (each token's
start offset, importance and surprise, and the number of windows) is stored under a key made of
everything it depends on: the text, the query, the draft's fingerprint, the scoring
settings (lookahead, pooling kernel, query template, window) and the device and dtype.
A hit needs neither torch nor the model, so a re-run costs a small fraction of the
first.

Entries are single `.npz` files written to a temporary name and renamed into place,
so concurrent runs never see half an entry; one that fails to load or does not fit
its text is ignored and rewritten. The folder is `cache_folder.default_cache_dir()`;
old entries are pruned once the folder outgrows `MAX_CACHE_BYTES`.
"""

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crossprefill_cli.models.cache_folder import default_cache_dir, store

CACHE_FORMAT = 1
MAX_CACHE_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class TokenScores:
    """What the draft says about one input: per-token start offsets, attention
    importances and, when it was measured, surprise."""

    starts: np.ndarray
    importance: np.ndarray
    windows: int
    surprise: np.ndarray | None = None


def cache_key(text: str, **settings) -> str:
    """A stable key for the text plus every setting the draft's scores depend on."""
    material = json.dumps({"format": CACHE_FORMAT,
                           "text": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                           **settings}, sort_keys=True)
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


class ScoreCache:
    def __init__(self, folder: Path | None = None):
        self.folder = folder or default_cache_dir()

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.npz"

    def get(self, key: str, text_length: int) -> TokenScores | None:
        """The stored scores, or None if absent, unreadable or not fitting the text."""
        try:
            with np.load(self._path(key), allow_pickle=False) as stored:
                scores = TokenScores(stored["starts"], stored["importance"], int(stored["windows"]),
                                     stored["surprise"] if "surprise" in stored.files else None)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None
        fits = (scores.starts.ndim == 1 and scores.starts.shape == scores.importance.shape
                and len(scores.starts) > 0 and scores.windows >= 1
                and 0 <= scores.starts.min() and scores.starts.max() < text_length
                and bool(np.all(np.isfinite(scores.importance)))
                and (scores.surprise is None or (scores.surprise.shape == scores.starts.shape
                                                 and bool(np.all(np.isfinite(scores.surprise))))))
        return scores if fits else None

    def put(self, key: str, scores: TokenScores) -> None:
        """Store atomically (`cache_folder.store`); a cache that cannot be written is
        simply not used."""
        entry = io.BytesIO()
        surprise = {} if scores.surprise is None else {"surprise": scores.surprise}
        np.savez(entry, starts=scores.starts, importance=scores.importance,
                 windows=np.int64(scores.windows), **surprise)
        if store(self._path(key), entry.getvalue()):
            self._prune()

    def _prune(self) -> None:
        entries = []
        for path in self.folder.glob("*.npz"):
            try:
                stat = path.stat()
            except OSError:
                continue  # removed by a concurrent run
            entries.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= MAX_CACHE_BYTES:
                break
            path.unlink(missing_ok=True)
            total -= size
