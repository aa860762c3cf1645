"""Fan-out of the writer's NOTIFY messages to live-stream clients.

One dedicated connection LISTENs on the channel of every job someone is watching (UNLISTEN when the
last watcher leaves), so a thousand viewers cost one database connection, not a thousand. Each
payload names what changed (its "kind"), so a watcher re-reads only that.
"""

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

import asyncpg

from epochscope_schemas.notify import ChangeKind, job_channel

log = logging.getLogger("epochscope.api.live")

ALL_CHANGE_KINDS = frozenset(kind.value for kind in ChangeKind)  # what a NOTIFY payload may name


def kinds_of(payload: str) -> frozenset[str]:
    """What a NOTIFY payload says changed; anything unreadable or unknown means: it may be anything."""
    try:
        kind = json.loads(payload).get("kind")
    except (ValueError, AttributeError):
        return ALL_CHANGE_KINDS
    return frozenset({kind}) if isinstance(kind, str) and kind in ALL_CHANGE_KINDS else ALL_CHANGE_KINDS


class JobWatch:
    """The changes announced for one job since its watcher last looked."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()
        self._kinds: set[str] = set()

    def announce(self, kinds: frozenset[str]) -> None:
        self._kinds |= kinds
        self._changed.set()

    async def wait(self, timeout: float) -> frozenset[str]:
        """The kinds announced since the last call, waiting up to `timeout`; all of them on a timeout (a poll)."""
        try:
            await asyncio.wait_for(self._changed.wait(), timeout=timeout)
        except TimeoutError:
            self._kinds |= ALL_CHANGE_KINDS
        return self.take()

    def take(self) -> frozenset[str]:
        """The kinds announced so far, without waiting; clears them."""
        kinds, self._kinds = frozenset(self._kinds), set()
        self._changed.clear()
        return kinds


class NotificationHub:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._watchers: dict[str, set[JobWatch]] = {}

    async def close(self) -> None:
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()

    @asynccontextmanager
    async def watch(self, job_id: UUID) -> AsyncIterator[JobWatch]:
        """The changes the writer announces for this job, from now until the block ends."""
        channel = job_channel(job_id)
        watch = JobWatch()
        async with self._lock:
            watchers = self._watchers.setdefault(channel, set())
            if not watchers:
                await self._listen(channel)
            watchers.add(watch)
        try:
            yield watch
        finally:
            async with self._lock:
                watchers.discard(watch)
                if not watchers:
                    del self._watchers[channel]
                    await self._unlisten(channel)

    def _notify(self, _conn: object, _pid: int, channel: str, payload: str) -> None:
        kinds = kinds_of(payload)
        for watch in self._watchers.get(channel, ()):
            watch.announce(kinds)

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self._dsn)
            for channel in self._watchers:  # after a reconnect, listen again to everything watched
                await self._conn.add_listener(channel, self._notify)
        return self._conn

    async def _listen(self, channel: str) -> None:
        try:
            await (await self._connection()).add_listener(channel, self._notify)
        except (OSError, asyncpg.PostgresError) as exc:  # watchers still poll; the next watch reconnects
            log.warning("live: cannot LISTEN %s: %s", channel, exc)

    async def _unlisten(self, channel: str) -> None:
        if self._conn is not None and not self._conn.is_closed():
            try:
                await self._conn.remove_listener(channel, self._notify)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("live: cannot UNLISTEN %s: %s", channel, exc)
