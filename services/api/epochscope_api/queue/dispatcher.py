"""The job queue's dispatcher as a background task of the API process (the pass itself: service_layer/queue.py).

It runs beside the outbox relay (it needs the database and publishes through the same outbox, so a start is never
sent without its attempt committed); one API replica dispatches at a time (each pass takes an advisory lock).
"""

import logging

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from epochscope_api.data.job_queue import NOTIFY_CHANNEL
from epochscope_api.queue.wakeup import Wakeup
from epochscope_api.service_layer.queue import DispatchSettings, dispatch_once

log = logging.getLogger("epochscope.api.dispatcher")


class Dispatcher:
    """A pass on every NOTIFY of the queue (a new job, a heartbeat, a job's end) or every poll."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: DispatchSettings,
        token_secret: str,
        max_bytes: int,
        signing_key: Ed25519PrivateKey | None,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._token_secret = token_secret
        self._max_bytes = max_bytes
        self._signing_key = signing_key

    async def run(self) -> None:
        async with Wakeup(self._pool, NOTIFY_CHANNEL) as wakeup:
            while True:
                try:
                    async with self._pool.acquire() as conn:
                        await dispatch_once(
                            conn, self._settings, self._token_secret, self._max_bytes, self._signing_key
                        )
                except Exception as exc:  # the database away: try again on the next pass
                    log.warning("dispatcher: %s: %s", type(exc).__name__, exc)
                await wakeup.wait(self._settings.poll_s)
