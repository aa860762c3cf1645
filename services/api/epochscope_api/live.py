"""Fan-out of the writer's NOTIFY messages to live-stream clients.

One dedicated connection LISTENs on the channel of every job someone is watching (UNLISTEN when the
last watcher leaves), so a thousand viewers cost one database connection, not a thousand.
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

import asyncpg

from epochscope_schemas.notify import job_channel

log = logging.getLogger("epochscope.api.live")


class NotificationHub:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._watchers: dict[str, set[asyncio.Event]] = {}

    async def close(self) -> None:
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.close()

    @asynccontextmanager
    async def watch(self, job_id: UUID) -> AsyncIterator[asyncio.Event]:
        """An event set whenever the writer reports a change to this job."""
        channel = job_channel(job_id)
        wakeup = asyncio.Event()
        async with self._lock:
            watchers = self._watchers.setdefault(channel, set())
            if not watchers:
                await self._listen(channel)
            watchers.add(wakeup)
        try:
            yield wakeup
        finally:
            async with self._lock:
                watchers.discard(wakeup)
                if not watchers:
                    del self._watchers[channel]
                    await self._unlisten(channel)

    def _notify(self, _conn: object, _pid: int, channel: str, _payload: str) -> None:
        for wakeup in self._watchers.get(channel, ()):
            wakeup.set()

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
