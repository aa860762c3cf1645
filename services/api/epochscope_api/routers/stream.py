"""Live stream of a job over Server-Sent Events (service_layer/live.py merges the feeds), and the short-lived
tickets a browser opens it with: EventSource cannot send an Authorization header, and a bearer token in a URL is
logged by proxies, so the URL carries a ticket good for one job's stream for a few minutes instead."""

import time
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

from epochscope_api.auth.user_tokens import unauthorized
from epochscope_api.auth.verified_tokens import VerifiedUser
from epochscope_api.deps import (
    WRITE_LIMITED,
    BearerDep,
    CurrentUser,
    HubDep,
    PoolDep,
    SettingsDep,
    StreamSlotsDep,
    StreamTicketsDep,
    VerifierDep,
)
from epochscope_api.http.errors import NOT_FOUND, QUOTA, error_responses
from epochscope_api.service_layer.live import LiveEvent, LiveLimits, check_job, job_events, parse_position

router = APIRouter(prefix="/v1/jobs/{job_id}", tags=["predictions"])

STREAM_RESPONSES = {
    200: {
        "description": (
            "text/event-stream. Events and their data: `prediction` (Prediction), `round` (RoundSummary, as the"
            " trainer summarized it), `progress` (ProgressPoint), `warning` (JobWarning), `rollout` (Rollout: a GRPO"
            " training step's completion), `status` (Job, on connect and on every status change), a final `end` (the"
            " final status, or `deleted`), or a final `expired` when the ticket or bearer token that opened the stream"
            " expires (open it again with a fresh one). Each data event's id is the stream position: send the last one"
            " back as Last-Event-ID to resume without gaps or repeats."
        ),
        "content": {"text/event-stream": {}},
    },
    **NOT_FOUND,
    **error_responses(422, 429),
}


class StreamTicketResponse(BaseModel):
    ticket: str = Field(description="Opens this job's stream as `?ticket=`, until it expires.")
    expires_at: float = Field(description="When the ticket, and a stream it opened, expires: seconds since 1970.")


@router.post(
    "/stream-tickets",
    response_model=StreamTicketResponse,
    responses=NOT_FOUND | QUOTA,
    dependencies=WRITE_LIMITED,
    operation_id="create_stream_ticket",
)
async def create_stream_ticket(
    job_id: uuid.UUID, user_id: CurrentUser, pool: PoolDep, tickets: StreamTicketsDep
) -> StreamTicketResponse:
    """A ticket that opens this job's live stream (GET .../stream?ticket=) for EPOCHSCOPE_STREAM_TICKET_SECONDS."""
    await check_job(pool, user_id, job_id)
    ticket = tickets.mint(user_id, job_id)
    return StreamTicketResponse(ticket=ticket.ticket, expires_at=ticket.expires_at)


async def stream_caller(
    job_id: uuid.UUID,
    credentials: BearerDep,
    verifier: VerifierDep,
    tickets: StreamTicketsDep,
    ticket: Annotated[str | None, Query(description="A ticket from POST .../stream-tickets (for EventSource).")] = None,
) -> VerifiedUser:
    """The caller, by bearer token or by a ticket for this job; a 401 without either."""
    if credentials is not None:
        return await verifier.verify(credentials.credentials)
    if ticket:
        return tickets.verify(ticket, job_id)
    raise unauthorized("missing bearer token or stream ticket")


def _sse(event: LiveEvent) -> ServerSentEvent:
    return ServerSentEvent(event=event.event, data=event.data, id=event.position)


@router.get("/stream", responses=STREAM_RESPONSES, response_class=EventSourceResponse, operation_id="stream_job")
async def stream_job(
    job_id: uuid.UUID,
    caller: Annotated[VerifiedUser, Depends(stream_caller)],
    pool: PoolDep,
    hub: HubDep,
    slots: StreamSlotsDep,
    settings: SettingsDep,
    last_event_id: Annotated[
        str | None, Header(description="Resume after this event: the id of the last event received.")
    ] = None,
    resume_after: Annotated[
        str | None,
        Query(
            alias="last_event_id",
            description="As the Last-Event-ID header, for a new EventSource (which cannot set it); the header wins.",
        ),
    ] = None,
) -> EventSourceResponse:
    """The job's rows as they are stored, from the start or from Last-Event-ID, until it ends or the credential
    that opened it expires. At most EPOCHSCOPE_STREAMS_PER_USER open at once per user (a 429 past it)."""
    await check_job(pool, caller.user_id, job_id)  # 404 before the stream opens
    position = parse_position(last_event_id or resume_after)
    limits = LiveLimits(settings.page_max_bytes, settings.stream_poll_seconds, settings.dispatch_lease_seconds)
    events = job_events(hub, pool, caller.user_id, job_id, position, limits, caller.expires_at, time.time)
    held = slots.hold(caller.user_id, events)
    return EventSourceResponse((_sse(event) async for event in held), ping=15)
