"""The live-stream use case: one job's predictions, round summaries, progress, warnings, GRPO rollouts and status,
merged into one ordered feed of events from a stream position on, until the job ends, is deleted, or the caller's
credential expires.

Every data event's id is the stream position after it (one opaque cursor over all five feeds); a client that
reconnects with that position resumes right after it, without gaps or repeats. A NOTIFY from the writer says which
feed changed, so only that one is read again.
"""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import asyncpg
from pydantic import BaseModel

from epochscope_api.data.cursor import INT4, INT8, Part, decode_cursor, encode_cursor
from epochscope_api.data.db import user_transaction
from epochscope_api.data.job_warnings import fetch_warnings
from epochscope_api.data.jobs import ensure_job
from epochscope_api.data.predictions import fetch_new_predictions
from epochscope_api.data.progress import fetch_progress
from epochscope_api.data.rollouts import fetch_new_rollouts
from epochscope_api.data.rounds import fetch_summarized_rounds
from epochscope_api.errors import JobNotFound
from epochscope_api.live.hub import ALL_CHANGE_KINDS, NotificationHub
from epochscope_api.service_layer.jobs import job_with_place

ROWS_PER_READ = 500  # rows of one feed per read, before the other feeds get their turn
Rows = list[tuple[int, BaseModel]]  # (the feed's key, the event's data)
Read = tuple[Rows, bool]  # the rows, and whether the feed had more than one read returns


async def _predictions(conn: asyncpg.Connection, job_id: uuid.UUID, after: int, max_bytes: int) -> Read:
    """Bounded in bytes too: prediction rows carry texts (as rollouts do; the other feeds' rows are small and fixed
    in size)."""
    rows, more = await fetch_new_predictions(conn, job_id, after, ROWS_PER_READ, max_bytes)
    return list(rows), more


async def _rollouts(conn: asyncpg.Connection, job_id: uuid.UUID, after: int, max_bytes: int) -> Read:
    rows, more = await fetch_new_rollouts(conn, job_id, after, ROWS_PER_READ, max_bytes)
    return list(rows), more


def _read(rows: Rows) -> Read:
    return rows, len(rows) == ROWS_PER_READ


async def _rounds(conn: asyncpg.Connection, job_id: uuid.UUID, after: int, _: int) -> Read:
    return _read(
        [(item.round_index, item) for item in await fetch_summarized_rounds(conn, job_id, after, ROWS_PER_READ)]
    )


async def _progress(conn: asyncpg.Connection, job_id: uuid.UUID, after: int, _: int) -> Read:
    return _read([(point.step, point) for point in await fetch_progress(conn, job_id, after, ROWS_PER_READ)])


async def _warnings(conn: asyncpg.Connection, job_id: uuid.UUID, after: int, _: int) -> Read:
    return _read(list(await fetch_warnings(conn, job_id, after, ROWS_PER_READ)))


@dataclass(frozen=True)
class Feed:
    """One kind of row a job accumulates, read in the order of its key."""

    kind: str  # the NOTIFY kind that announces new rows
    event: str  # the event name
    start: int  # below every key: the position before the first row
    part: Part  # checks the key inside a stream position
    read: Callable[[asyncpg.Connection, uuid.UUID, int, int], Awaitable[Read]]  # (conn, job, after, max bytes)


FEEDS = (
    Feed("predictions", "prediction", 0, INT8, _predictions),  # key: commit sequence
    Feed("round", "round", -1, INT4, _rounds),  # key: round index
    Feed("progress", "progress", -1, INT4, _progress),  # key: step
    Feed("warning", "warning", 0, INT8, _warnings),  # key: commit sequence
    Feed("rollouts", "rollout", 0, INT8, _rollouts),  # key: commit sequence
)


@dataclass(frozen=True)
class LiveEvent:
    event: str  # a feed's event, `status`, `end` (the job is final or deleted) or `expired` (the credential is)
    data: str  # JSON of the row or the job; for `end`, the final status or `deleted`
    position: str | None = None  # the stream position after a feed's event


@dataclass(frozen=True)
class LiveLimits:
    page_max_bytes: int  # most bytes of prediction rows per read
    poll_s: float  # a re-read without a NOTIFY
    lease_s: float  # the dispatcher's lease, for the job's place in the queue


def parse_position(position: str | None) -> list[int]:
    """The last key sent of each feed, from a stream position (BadCursor if this stream did not make it)."""
    if not position:
        return [feed.start for feed in FEEDS]
    return decode_cursor(position, *(feed.part for feed in FEEDS), name="Last-Event-ID")


async def check_job(pool: asyncpg.Pool, user_id: str, job_id: uuid.UUID) -> None:
    """JobNotFound unless the user has the job: checked before a stream opens."""
    async with user_transaction(pool, user_id) as conn:
        await ensure_job(conn, job_id)


async def job_events(
    hub: NotificationHub,
    pool: asyncpg.Pool,
    user_id: str,
    job_id: uuid.UUID,
    position: list[int],
    limits: LiveLimits,
    expires_at: float,
    clock: Callable[[], float],
) -> AsyncIterator[LiveEvent]:
    """The job's events after `position` until it ends; `expired` once clock() passes `expires_at`."""
    last_status = None
    async with hub.watch(job_id) as watch:
        kinds = ALL_CHANGE_KINDS
        while True:
            if clock() >= expires_at:
                yield LiveEvent("expired", "the stream's credential expired: open it again with a fresh one")
                return
            async with user_transaction(pool, user_id) as conn:
                try:
                    job = await job_with_place(conn, job_id, limits.lease_s)
                except JobNotFound:  # deleted while watched
                    yield LiveEvent("end", "deleted")
                    return
                reads = [
                    (index, await feed.read(conn, job_id, position[index], limits.page_max_bytes))
                    for index, feed in enumerate(FEEDS)
                    if feed.kind in kinds
                ]
            for index, (rows, _) in reads:
                for key, data in rows:
                    position[index] = key
                    yield LiveEvent(FEEDS[index].event, data.model_dump_json(), encode_cursor(position))
            status = job.model_dump_json(exclude={"progress"})
            if status != last_status:
                last_status = status
                yield LiveEvent("status", job.model_dump_json())
            unfinished = frozenset(FEEDS[index].kind for index, (_, more) in reads if more)
            if unfinished:
                kinds = unfinished | watch.take()
            elif job.status.is_final:
                yield LiveEvent("end", job.status.value)
                return
            else:
                kinds = await watch.wait(max(0.0, min(limits.poll_s, expires_at - clock())))
