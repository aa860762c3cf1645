"""Live stream of a job's new predictions and status changes over Server-Sent Events.

Each prediction event's id is its commit sequence number; a client that reconnects with
Last-Event-ID resumes right after it, without gaps or repeats. The stream ends with an `end`
event once the job is final and every row has been sent.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from epochscope_api.auth import StreamUser
from epochscope_api.db import user_transaction
from epochscope_api.models import Prediction
from epochscope_api.routers.jobs import NOT_FOUND, Pool, Settings, fetch_job
from epochscope_api.routers.predictions import PREDICTION_COLUMNS

router = APIRouter(prefix="/v1/jobs/{job_id}", tags=["predictions"])

BATCH = 500
STREAM_RESPONSES = {
    200: {
        "description": "text/event-stream: `prediction` events (id = sequence), `status` events, a final `end`.",
        "content": {"text/event-stream": {}},
    },
    **NOT_FOUND,
}


def _sequence(last_event_id: str | None) -> int:
    return int(last_event_id) if last_event_id and last_event_id.isdigit() else 0


async def _events(
    request: Request, pool: Pool, user_id: str, job_id: uuid.UUID, after: int, poll: float
) -> AsyncIterator[ServerSentEvent]:
    last_status = None
    async with request.app.state.hub.watch(job_id) as wakeup:
        while True:
            wakeup.clear()  # before reading, so a change committed meanwhile wakes us again
            async with user_transaction(pool, user_id) as conn:
                try:
                    job = await fetch_job(conn, job_id)
                except HTTPException:  # deleted while watched
                    yield ServerSentEvent(event="end", data="deleted")
                    return
                rows = await conn.fetch(
                    f"SELECT seq, {PREDICTION_COLUMNS} FROM training_predictions"
                    " WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                    job_id,
                    after,
                    BATCH,
                )
            for row in rows:
                after = row["seq"]
                prediction = Prediction(**{name: row[name] for name in Prediction.model_fields})
                yield ServerSentEvent(event="prediction", id=str(after), data=prediction.model_dump_json())
            status = job.model_dump_json(exclude={"config"})
            if status != last_status:
                last_status = status
                yield ServerSentEvent(event="status", data=status)
            if len(rows) == BATCH:
                continue
            if job.status.is_final:
                yield ServerSentEvent(event="end", data=job.status.value)
                return
            try:
                await asyncio.wait_for(wakeup.wait(), timeout=poll)
            except TimeoutError:
                pass


@router.get("/stream", responses=STREAM_RESPONSES, response_class=EventSourceResponse, operation_id="stream_job")
async def stream_job(
    request: Request,
    job_id: uuid.UUID,
    user_id: StreamUser,
    pool: Pool,
    settings: Settings,
    last_event_id: Annotated[str | None, Header(description="Resume after this prediction sequence.")] = None,
) -> EventSourceResponse:
    async with user_transaction(pool, user_id) as conn:
        await fetch_job(conn, job_id)  # 404 before the stream opens
    events = _events(request, pool, user_id, job_id, _sequence(last_event_id), settings.stream_poll_seconds)
    return EventSourceResponse(events, ping=15)
