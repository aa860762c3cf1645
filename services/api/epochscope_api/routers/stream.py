"""Live stream of a job over Server-Sent Events: its predictions, round summaries, progress, warnings and status.

Every data event's id is the stream position after it (one opaque cursor over all four feeds); a
client that reconnects with that Last-Event-ID resumes right after it, without gaps or repeats. A
NOTIFY from the writer says which feed changed, so only that one is read again. The stream ends
with an `end` event once the job is final and every row has been sent.
"""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Header
from pydantic import BaseModel
from sse_starlette import EventSourceResponse, ServerSentEvent

from epochscope_api.data.cursor import INT4, INT8, Part, decode_cursor, encode_cursor
from epochscope_api.data.db import user_transaction
from epochscope_api.data.job_warnings import fetch_warnings
from epochscope_api.data.jobs import ensure_job
from epochscope_api.data.predictions import fetch_new_predictions
from epochscope_api.data.progress import fetch_progress
from epochscope_api.data.rounds import fetch_summarized_rounds
from epochscope_api.deps import HubDep, PoolDep, SettingsDep, StreamUser
from epochscope_api.errors import JobNotFound
from epochscope_api.http.errors import NOT_FOUND, error_responses
from epochscope_api.live.hub import ALL_CHANGE_KINDS, NotificationHub
from epochscope_api.service_layer.jobs import job_with_place
from epochscope_api.settings import ApiSettings

router = APIRouter(prefix="/v1/jobs/{job_id}", tags=["predictions"])

ROWS_PER_READ = 500  # rows of one feed per read, before the other feeds get their turn
Rows = list[tuple[int, BaseModel]]  # (the feed's key, the event's data)
Read = tuple[Rows, bool]  # the rows, and whether the feed had more than one read returns


async def _predictions(conn: asyncpg.Connection, job_id: uuid.UUID, after: int, max_bytes: int) -> Read:
    """Bounded in bytes too: prediction rows carry texts (the other feeds' rows are small and fixed in size)."""
    rows, more = await fetch_new_predictions(conn, job_id, after, ROWS_PER_READ, max_bytes)
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
    event: str  # the SSE event name
    start: int  # below every key: the position before the first row
    part: Part  # checks the key inside a Last-Event-ID
    read: Callable[[asyncpg.Connection, uuid.UUID, int, int], Awaitable[Read]]  # (conn, job, after, max bytes)


FEEDS = (
    Feed("predictions", "prediction", 0, INT8, _predictions),  # key: commit sequence
    Feed("round", "round", -1, INT4, _rounds),  # key: round index
    Feed("progress", "progress", -1, INT4, _progress),  # key: step
    Feed("warning", "warning", 0, INT8, _warnings),  # key: commit sequence
)

STREAM_RESPONSES = {
    200: {
        "description": (
            "text/event-stream. Events and their data: `prediction` (Prediction), `round` (RoundSummary, as the"
            " trainer summarized it), `progress` (ProgressPoint), `warning` (JobWarning), `status` (Job, on connect"
            " and on every status change) and a final `end` (the final status, or `deleted`). Each data event's id"
            " is the stream position: send the last one back as Last-Event-ID to resume without gaps or repeats."
        ),
        "content": {"text/event-stream": {}},
    },
    **NOT_FOUND,
    **error_responses(422),
}


def parse_position(last_event_id: str | None) -> list[int]:
    """The last key sent of each feed, from a Last-Event-ID (BadCursor if this stream did not make it)."""
    if not last_event_id:
        return [feed.start for feed in FEEDS]
    return decode_cursor(last_event_id, *(feed.part for feed in FEEDS), name="Last-Event-ID")


async def _events(
    hub: NotificationHub,
    pool: asyncpg.Pool,
    user_id: str,
    job_id: uuid.UUID,
    position: list[int],
    settings: ApiSettings,
) -> AsyncIterator[ServerSentEvent]:
    last_status = None
    async with hub.watch(job_id) as watch:
        kinds = ALL_CHANGE_KINDS
        while True:
            async with user_transaction(pool, user_id) as conn:
                try:
                    job = await job_with_place(conn, job_id, settings.dispatch_lease_seconds)
                except JobNotFound:  # deleted while watched
                    yield ServerSentEvent(event="end", data="deleted")
                    return
                reads = [
                    (index, await feed.read(conn, job_id, position[index], settings.page_max_bytes))
                    for index, feed in enumerate(FEEDS)
                    if feed.kind in kinds
                ]
            for index, (rows, _) in reads:
                for key, data in rows:
                    position[index] = key
                    yield ServerSentEvent(
                        event=FEEDS[index].event, id=encode_cursor(position), data=data.model_dump_json()
                    )
            status = job.model_dump_json(exclude={"progress"})
            if status != last_status:
                last_status = status
                yield ServerSentEvent(event="status", data=job.model_dump_json())
            unfinished = frozenset(FEEDS[index].kind for index, (_, more) in reads if more)
            if unfinished:
                kinds = unfinished | watch.take()
            elif job.status.is_final:
                yield ServerSentEvent(event="end", data=job.status.value)
                return
            else:
                kinds = await watch.wait(settings.stream_poll_seconds)


@router.get("/stream", responses=STREAM_RESPONSES, response_class=EventSourceResponse, operation_id="stream_job")
async def stream_job(
    job_id: uuid.UUID,
    user_id: StreamUser,
    pool: PoolDep,
    hub: HubDep,
    settings: SettingsDep,
    last_event_id: Annotated[
        str | None, Header(description="Resume after this event: the id of the last event received.")
    ] = None,
) -> EventSourceResponse:
    """The job's rows as they are stored, from the start or from Last-Event-ID, until it ends."""
    async with user_transaction(pool, user_id) as conn:
        await ensure_job(conn, job_id)  # 404 before the stream opens
    position = parse_position(last_event_id)
    events = _events(hub, pool, user_id, job_id, position, settings)
    return EventSourceResponse(events, ping=15)
