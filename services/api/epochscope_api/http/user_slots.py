"""Per-user caps on long-lived responses (exports, live streams): each holds a slot until its body ends.

The count is per API process: a long response lives in one process, and counting it there needs no shared state
that a crashed process could leave held. N replicas (or workers) admit N times the cap; the pool timeouts bound what
each process lets them hold.
"""

from collections import Counter
from collections.abc import AsyncIterator
from typing import TypeVar

from epochscope_api.errors import QuotaExceeded

Item = TypeVar("Item")


class UserSlots:
    def __init__(self, limit: str, what: str, maximum: int, retry_after: int) -> None:
        self._limit = limit  # the quota's name in a 429 (the setting's name without its prefix)
        self._what = what  # "exports", "live streams"
        self._maximum = maximum
        self._retry_after = retry_after
        self._held: Counter[str] = Counter()

    def held(self, user_id: str) -> int:
        return self._held[user_id]

    def hold(self, user_id: str, body: AsyncIterator[Item]) -> AsyncIterator[Item]:
        """`body`, holding one of the user's slots from now until it ends or the client goes. QuotaExceeded (a
        429) at once when all are held, before any byte is sent. The response must iterate what this returns."""
        if self._held[user_id] >= self._maximum:
            raise QuotaExceeded(self._limit, f"at most {self._maximum} {self._what} at once", self._retry_after)
        self._held[user_id] += 1
        return self._release_after(user_id, body)

    async def _release_after(self, user_id: str, body: AsyncIterator[Item]) -> AsyncIterator[Item]:
        try:
            async for item in body:
                yield item
        finally:
            self._held[user_id] -= 1
            if not self._held[user_id]:
                del self._held[user_id]
