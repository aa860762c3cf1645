"""The on-disk spool: events waiting for the broker, in one sqlite database per job folder.

Nothing is rewritten in place. Events are inserted, and deleted once the broker has acknowledged them,
each change in its own transaction; delivery reads them in `seq` order. WAL with synchronous=FULL: a
transaction that returned is on disk, and one cut short by a kill -9 (or a power loss) is rolled back
whole when the file is next opened, so a torn write can only lose events that were never reported as
spooled. FULL rather than NORMAL because the spool is the only copy of its events and is written only
while the broker is away, in batches, so the fsync per commit costs nothing in normal running.
A file sqlite cannot read is set aside (renamed, logged), never a crash loop.
"""

import logging
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("epochscope.trainer.spool")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS events"
    " (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL)"
)
_SIDE_FILES = ("-wal", "-shm")


@dataclass(frozen=True)
class Outgoing:
    """One message for the broker: topic, key (the job id) and the encoded event."""

    topic: str
    key: str
    value: bytes


@dataclass(frozen=True)
class Spooled:
    seq: int
    item: Outgoing


class Spool:
    """Events in delivery order. Not thread-safe: the caller serialises access (one lock). Two processes may share
    one: a job's child appends while the trainer service delivers and removes (sqlite's locks order the writes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = self._open()
        except sqlite3.DatabaseError as exc:
            aside = path.with_name(f"{path.name}.unreadable-{int(time.time())}")
            log.error("spool %s is unreadable (%s); set aside as %s, starting a new one", path, exc, aside.name)
            for suffix in ("", *_SIDE_FILES):
                part = Path(f"{path}{suffix}")
                if part.exists():
                    part.replace(f"{aside}{suffix}")
            self._conn = self._open()

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(_SCHEMA)
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    def __len__(self) -> int:
        """Read each time: the other process sharing the spool may have added or removed events."""
        return self._conn.execute("SELECT count(*) FROM events").fetchone()[0]

    def append(self, items: Sequence[Outgoing]) -> None:
        """After everything spooled, in one transaction."""
        if items:
            self._insert(None, items)

    def prepend(self, items: Sequence[Outgoing]) -> None:
        """Before everything spooled (events that were in flight when the broker went away), in one transaction."""
        if items:
            self._insert(len(items), items)

    def _insert(self, before_head: int | None, items: Sequence[Outgoing]) -> None:
        with self._transaction() as conn:
            if before_head is None:
                rows = [(None, i.topic, i.key, i.value) for i in items]
            else:
                head = conn.execute("SELECT coalesce(min(seq), 1) FROM events").fetchone()[0]
                rows = [(head - before_head + n, i.topic, i.key, i.value) for n, i in enumerate(items)]
            conn.executemany("INSERT INTO events (seq, topic, key, value) VALUES (?, ?, ?, ?)", rows)

    def head(self, limit: int) -> list[Spooled]:
        rows = self._conn.execute("SELECT seq, topic, key, value FROM events ORDER BY seq LIMIT ?", (limit,))
        return [Spooled(seq, Outgoing(topic, key, bytes(value))) for seq, topic, key, value in rows]

    def remove(self, delivered: Sequence[Spooled]) -> None:
        """Drop events the broker acknowledged (or refused for good), in one transaction."""
        if delivered:
            with self._transaction() as conn:
                conn.executemany("DELETE FROM events WHERE seq = ?", [(s.seq,) for s in delivered])

    def close(self) -> None:
        """Close; an empty spool's file is removed, so a job folder keeps one only while events wait."""
        empty = len(self) == 0
        self._conn.close()
        if empty:  # side files first: a stale WAL must never meet a new database of the same name
            for suffix in (*_SIDE_FILES, ""):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def _transaction(self) -> "_Transaction":
        return _Transaction(self._conn)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on an error (unless sqlite rolled back already, as on SQLITE_FULL)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self._conn.execute("BEGIN IMMEDIATE")
        return self._conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._conn.execute("COMMIT")
        elif self._conn.in_transaction:
            self._conn.execute("ROLLBACK")
