"""What the API's background loops (the outbox relay, the dispatcher) share: waking on a NOTIFY of their channel."""

import asyncio
from types import TracebackType

import asyncpg


class Wakeup:
    """While entered, a pool connection listens on `channel`; `wait` returns on a NOTIFY or after its timeout."""

    def __init__(self, pool: asyncpg.Pool, channel: str) -> None:
        self._pool = pool
        self._channel = channel
        self._event = asyncio.Event()
        self._listener: asyncpg.Connection | None = None

    async def __aenter__(self) -> "Wakeup":
        self._listener = await self._pool.acquire()
        await self._listener.add_listener(self._channel, self._on_notify)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._listener is not None:
            listener, self._listener = self._listener, None
            await listener.remove_listener(self._channel, self._on_notify)
            await self._pool.release(listener)

    async def wait(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._event.wait(), timeout=timeout)
        except TimeoutError:
            pass
        self._event.clear()

    def _on_notify(self, *_: object) -> None:
        self._event.set()
