"""Omissions that can be asked back for: references in gap markers, and their store.

With `Settings.refs`, every gap marker of a compression carries a handle to the text it
stands for, `ref ID:START-END`: ID names the input (the shortest prefix, of at least
`ID_HEX` hex digits, of its digest that no other stored input holds), START-END are
the character offsets of the omitted stretch in it. The input is stored once, whatever
the budget; every compression of it, at any keep rate, points into the same entry, and
`crossprefill expand`, `serve`'s `POST /v1/expand` and the MCP server's `expand` give
back `text[START:END]`.

The store is one SQLite file under the cache folder (`cache_folder`): inputs
(zlib-compressed), each with its size and last use. It is bounded: past `max_bytes` the
least recently used inputs go, and their IDs are kept as tombstones (up to
`TOMBSTONES`) with their digests: an old reference to an evicted input says so, an ID
is never reused for another text while its tombstone lasts (an unknown or evicted
reference is an error, never a wrong text), and an evicted input stored again gets its
old ID back, so its compressions come out as they did before. SQLite's locking (WAL, a busy timeout, writes in
`BEGIN IMMEDIATE` transactions) makes it safe for concurrent writers: commands, a
server's threads and batch workers may share it.
"""

import hashlib
import os
import re
import sqlite3
import time
import zlib
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Iterator

from crossprefill_cli.errors import CrossprefillError, UnknownReference
from crossprefill_cli.models.cache_folder import default_cache_dir

ID_HEX = 8
MAX_STORE_BYTES = 256 * 1024 * 1024  # the default cap; CROSSPREFILL_REFS_MAX_BYTES
TOMBSTONES = 100_000
BUSY_SECONDS = 30.0
BARE = r"([0-9a-f]{%d,64}):(\d+)-(\d+)" % ID_HEX
# `7f3a9c01:120-480`, or anything holding `ref 7f3a9c01:120-480` (a whole gap marker)
REFERENCE, IN_MARKER = re.compile(rf"\s*{BARE}\s*"), re.compile(rf"\bref\s+{BARE}\b")


def handle(identity: str, start: int, end: int) -> str:
    """The reference of the stretch [start, end) of the input stored as `identity`."""
    return f"{identity}:{start}-{end}"


def parse(reference: str) -> tuple[str, int, int]:
    """The input's ID and the offsets a reference names (`UnknownReference` if malformed)."""
    found = REFERENCE.fullmatch(reference.lower()) or IN_MARKER.search(reference.lower())
    if found is None or int(found[2]) > int(found[3]):
        raise UnknownReference(f"{reference.strip()!r} is not a reference; a gap marker's "
                               "looks like 'ref 7f3a9c01:120-480'")
    return found[1], int(found[2]), int(found[3])


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=32).hexdigest()


class RefStore:
    """The store of inputs whose omissions can be expanded (see the module docstring)."""

    def __init__(self, path: Path | None = None, *, max_bytes: int | None = None):
        self.path = path or default_cache_dir() / "references.sqlite3"
        self.max_bytes = max_bytes if max_bytes is not None else int(
            os.environ.get("CROSSPREFILL_REFS_MAX_BYTES", MAX_STORE_BYTES))
        if self.max_bytes < 1:
            raise CrossprefillError("the reference store's size cap must be positive")

    @contextmanager
    def _connected(self, *, writing: bool) -> Iterator[sqlite3.Connection]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=BUSY_SECONDS, isolation_level=None)
        except (OSError, sqlite3.Error) as error:
            raise CrossprefillError(f"cannot open the reference store {self.path}: "
                                    f"{error}") from None
        with closing(connection):
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("CREATE TABLE IF NOT EXISTS inputs (id TEXT PRIMARY KEY, "
                                   "digest TEXT UNIQUE NOT NULL, body BLOB NOT NULL, "
                                   "size INTEGER NOT NULL, used REAL NOT NULL)")
                connection.execute("CREATE TABLE IF NOT EXISTS evicted (id TEXT PRIMARY KEY, "
                                   "digest TEXT NOT NULL, at REAL NOT NULL)")
                connection.execute("CREATE INDEX IF NOT EXISTS evicted_digest "
                                   "ON evicted (digest)")
                connection.execute("BEGIN IMMEDIATE" if writing else "BEGIN")
                yield connection
                connection.execute("COMMIT")
            except sqlite3.Error as error:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise CrossprefillError(f"the reference store {self.path} failed: "
                                        f"{error}") from None
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise

    def put(self, text: str) -> str:
        """Store `text` (once: an input stored already is only marked as used); its ID."""
        digest, now = _digest(text), time.time()
        with self._connected(writing=True) as db:
            row = db.execute("SELECT id FROM inputs WHERE digest = ?", (digest,)).fetchone()
            if row is not None:
                db.execute("UPDATE inputs SET used = ? WHERE id = ?", (now, row[0]))
                return row[0]
            row = db.execute("SELECT id FROM evicted WHERE digest = ?", (digest,)).fetchone()
            identity = row[0] if row is not None else next(
                digest[:length] for length in range(ID_HEX, len(digest) + 1)
                if not _taken(db, digest[:length]))
            body = zlib.compress(text.encode("utf-8", "surrogatepass"), 6)
            db.execute("DELETE FROM evicted WHERE id = ?", (identity,))
            db.execute("INSERT INTO inputs VALUES (?, ?, ?, ?, ?)",
                       (identity, digest, body, len(body), now))
            self._evict(db, keep=identity)
            return identity

    def _evict(self, db: sqlite3.Connection, *, keep: str) -> None:
        """Drop the least recently used inputs (never `keep`) until the store fits."""
        total = db.execute("SELECT COALESCE(SUM(size), 0) FROM inputs").fetchone()[0]
        if total <= self.max_bytes:
            return
        now = time.time()
        for identity, digest, size in db.execute(
                "SELECT id, digest, size FROM inputs WHERE id != ? ORDER BY used, id",
                (keep,)).fetchall():
            db.execute("DELETE FROM inputs WHERE id = ?", (identity,))
            db.execute("INSERT OR REPLACE INTO evicted VALUES (?, ?, ?)", (identity, digest, now))
            total -= size
            if total <= self.max_bytes:
                break
        db.execute("DELETE FROM evicted WHERE id NOT IN (SELECT id FROM evicted "
                   "ORDER BY at DESC LIMIT ?)", (TOMBSTONES,))

    def expand(self, reference: str) -> str:
        """The original text a reference names (`UnknownReference` when there is none)."""
        identity, start, end = parse(reference)
        with self._connected(writing=True) as db:
            row = db.execute("SELECT body FROM inputs WHERE id = ?", (identity,)).fetchone()
            if row is None:
                gone = db.execute("SELECT 1 FROM evicted WHERE id = ?", (identity,)).fetchone()
                raise UnknownReference(
                    f"reference {identity} was evicted from the store (it keeps the "
                    f"{self.max_bytes:,} bytes of inputs used last); compress the text again"
                    if gone else f"no stored input {identity} (unknown to the store "
                    f"{self.path}); compress the text with --refs")
            db.execute("UPDATE inputs SET used = ? WHERE id = ?", (time.time(), identity))
        text = zlib.decompress(row[0]).decode("utf-8", "surrogatepass")
        if end > len(text):
            raise UnknownReference(f"reference {identity}:{start}-{end} is outside its input "
                                 f"({len(text):,} characters)")
        return text[start:end]


def _taken(db: sqlite3.Connection, identity: str) -> bool:
    """Whether an ID names another stored input, or one evicted (its tombstone)."""
    return db.execute("SELECT 1 FROM inputs WHERE id = ? UNION ALL SELECT 1 FROM evicted "
                      "WHERE id = ?", (identity, identity)).fetchone() is not None
