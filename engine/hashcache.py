"""The verification cache: xxh3-128 of files, keyed by (device, inode, size, mtime_ns, ctime_ns).

POINT_IN_TIME_CONSISTENT hashes every file on both sides; on a re-sync most of them are the very
inodes hashed last time. Any write to a file (and any chmod, chown, utime, rename into place)
moves its ctime, which no user can set back, so an inode whose size, mtime and ctime are all
unchanged still has the contents it was hashed with, and its digest is read from here instead of
the disk. A file that changed under the hash (before and after fstat differ from the listing) is
never stored.

Storage: one SQLite database (stdlib `sqlite3`) in WAL mode, `hashes.sqlite3` in the state
directory. SQLite rather than an atomically renamed file because a run stores only what it
hashed (an atomic file would be rewritten whole, ~100 MB for a million files, every run), several
transfers and processes may share one cache (WAL lets readers and one writer work at once; a
rename scheme would lose the updates of all but the last writer), and a crash at any moment
leaves the last committed state (WAL's journal is replayed on open).

Bounded: one row per inode (a changed file replaces its row), and at most `max_entries` rows;
on close, the rows least recently used go first. Never fatal: a cache that cannot be opened or
written (permissions, a corrupt file, a full disk) is logged and the run hashes from disk.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from typing import Any

__all__ = ["DEFAULT_MAX_ENTRIES", "HashCache"]

log = logging.getLogger(__name__)

DEFAULT_MAX_ENTRIES = 2_000_000  # ~60 bytes a row: ~120 MB at most
_BATCH = 2000
_IN_CHUNK = 500  # inodes per prefetch query (SQLite allows 32,766 parameters)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS hashes (
    dev INTEGER NOT NULL, ino INTEGER NOT NULL,
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
    digest BLOB NOT NULL, used INTEGER NOT NULL,
    PRIMARY KEY (dev, ino)
) WITHOUT ROWID
"""

Key = tuple[int, int, int, int, int]  # (dev, ino, size, mtime_ns, ctime_ns)


def key_of(st: os.stat_result) -> Key:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class HashCache:
    def __init__(self, directory: str, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.path = os.path.join(directory, "hashes.sqlite3")
        self.max_entries = max_entries
        self.hits = self.misses = 0
        self._lock = threading.Lock()
        self._now = int(time.time())
        self._puts: list[tuple[int, int, int, int, int, bytes, int]] = []
        self._used: list[tuple[int, int, int]] = []
        # (dev, ino) -> (size, mtime_ns, ctime_ns, digest), or None: looked up, not there
        self._ahead: dict[tuple[int, int], tuple[Any, ...] | None] = {}
        self._db: sqlite3.Connection | None = None
        try:
            os.makedirs(directory, 0o700, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=10, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable up to the last checkpoint
            db.execute(_SCHEMA)
            db.commit()
            self._db = db
        except (OSError, sqlite3.Error) as exc:
            log.warning("verification cache %s unusable, hashing from disk: %s", self.path, exc)

    @property
    def usable(self) -> bool:
        return self._db is not None

    def prefetch(self, stats: list[os.stat_result]) -> None:
        """Look up many inodes in a few queries (a directory's files, before `get` asks for
        each): one query per ~500 files instead of one per file."""
        db = self._db
        if db is None or not stats:
            return
        with self._lock:
            self._ahead.clear()
            by_dev: dict[int, list[int]] = {}
            for st in stats:
                by_dev.setdefault(st.st_dev, []).append(st.st_ino)
            try:
                for dev, inos in by_dev.items():
                    for i in range(0, len(inos), _IN_CHUNK):
                        chunk = inos[i : i + _IN_CHUNK]
                        marks = ",".join("?" * len(chunk))
                        for row in db.execute(
                            "SELECT ino, size, mtime_ns, ctime_ns, digest FROM hashes "
                            f"WHERE dev=? AND ino IN ({marks})",
                            (dev, *chunk),
                        ):
                            self._ahead[(dev, row[0])] = tuple(row[1:])
                        for ino in chunk:
                            self._ahead.setdefault((dev, ino), None)
            except sqlite3.Error as exc:
                self._give_up(exc)

    def get(self, st: os.stat_result) -> bytes | None:
        """The digest of this exact inode state, or None."""
        db = self._db
        if db is None:
            return None
        with self._lock:
            key = (st.st_dev, st.st_ino)
            try:
                if key in self._ahead:
                    row = self._ahead.pop(key)
                else:
                    row = db.execute(
                        "SELECT size, mtime_ns, ctime_ns, digest FROM hashes WHERE dev=? AND ino=?",
                        key,
                    ).fetchone()
            except sqlite3.Error as exc:
                self._give_up(exc)
                return None
            if row is None or tuple(row[:3]) != (st.st_size, st.st_mtime_ns, st.st_ctime_ns):
                self.misses += 1
                return None
            self.hits += 1
            self._used.append((self._now, st.st_dev, st.st_ino))
            if len(self._used) >= _BATCH:
                self._flush()
            digest: bytes = row[3]
            return digest

    def put(self, st: os.stat_result, digest: bytes) -> None:
        if self._db is None:
            return
        with self._lock:
            self._puts.append((*key_of(st), digest, self._now))
            if len(self._puts) >= _BATCH:
                self._flush()

    def _flush(self) -> None:
        db = self._db
        if db is None or not (self._puts or self._used):
            return
        try:
            with db:  # one transaction
                db.executemany("INSERT OR REPLACE INTO hashes VALUES (?,?,?,?,?,?,?)", self._puts)
                db.executemany("UPDATE hashes SET used=? WHERE dev=? AND ino=?", self._used)
        except sqlite3.Error as exc:
            self._give_up(exc)
        self._puts.clear()
        self._used.clear()

    def _give_up(self, exc: sqlite3.Error) -> None:
        log.warning("verification cache %s failed, hashing from disk: %s", self.path, exc)
        if self._db is not None:
            self._db.close()
        self._db = None

    def close(self) -> None:
        """Store what is pending and trim to `max_entries` (least recently used first)."""
        with self._lock:
            self._flush()
            db = self._db
            if db is None:
                return
            try:
                (count,) = db.execute("SELECT count(*) FROM hashes").fetchone()
                if count > self.max_entries:
                    with db:
                        db.execute(
                            "DELETE FROM hashes WHERE (dev, ino) IN "
                            "(SELECT dev, ino FROM hashes ORDER BY used LIMIT ?)",
                            (count - self.max_entries,),
                        )
            except sqlite3.Error as exc:
                log.warning("verification cache %s not trimmed: %s", self.path, exc)
            db.close()
            self._db = None
