"""The job queue's use cases: a job queued or withdrawn, and the dispatcher's pass.

Postgres holds the queue; a start goes out only for a trainer's free slot. A pass runs in one transaction under
an advisory lock (one API replica dispatches at a time): (1) attempts that are lost go back to the queue (a new
attempt to come) or, past `max_attempts`, fail with the reason: those on a trainer whose heartbeat is older than
the lease, and those dispatched more than `start_timeout_s` ago to a trainer that still heartbeats but has not
started them; each lost attempt is fenced: a cancel of that attempt only, signed with that attempt's token, goes out
with the start's topic and key, so a trainer that runs it stops it, and one handed its start after the cancel never runs
it; (2) each live trainer's free slots are its heartbeat's slots minus the jobs dispatched to it and not final, and
no more than its heartbeat says are free; (3) the slots are filled round-robin across users: the user served least
recently goes first, each user's oldest queued job, within `per_user` concurrency; (4) each dispatch is an attempt
(a new `attempt_id`, `attempt_no` + 1), recorded in `job_attempts`, and its start event, addressed to the trainer
and carrying a job token minted here for that attempt (the only place a start gets one; the writer refuses it on
another attempt's events), is queued in the outbox in the same transaction. The token travels sealed for the
addressed trainer's public key (from its heartbeat; a trainer without one gets no job), and the start is signed with
the dispatcher's Ed25519 key (`command_signing`).
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from epochscope_api.bus.event_size import encoded_within
from epochscope_api.bus.outbox import enqueue
from epochscope_api.data import dispatch as sql
from epochscope_api.data.job_queue import end_in_queue, end_job, insert_queue_row, notify_status
from epochscope_runtime.command_signing import signed_cancel, signed_start
from epochscope_runtime.job_token import JobTokenClaims, job_token_for
from epochscope_runtime.token_sealing import binding, load_public_key, seal
from epochscope_schemas.events import JobStartEvent, JobStatus, parse_event
from epochscope_schemas.topics import JOB_COMMANDS

log = logging.getLogger("epochscope.api.dispatcher")

NOTIFY_WAITING = 200  # queued jobs told of their new place after a dispatch (the rest see it on their next poll)
DISPATCH_ROOM = 1024  # bytes a dispatch adds to a stored start: its sealed token (~480), signature, trainer, attempt


@dataclass(frozen=True)
class DispatchSettings:
    lease_s: float = 10.0  # a trainer whose last heartbeat is older has lost its jobs
    start_timeout_s: float = 120.0  # a dispatched attempt its (live) trainer has not started by then is sent again
    max_attempts: int = 3  # dispatches per job before it fails
    per_user: int = 2  # a user's jobs dispatched or running at once
    poll_s: float = 1.0


async def queue_job(conn: asyncpg.Connection, start: JobStartEvent, token_expires_at: datetime, max_bytes: int) -> None:
    """Queue the job in the caller's transaction (EventTooLarge if its start would not fit the bus once dispatched).
    The start is stored without a token: the dispatcher mints one for each attempt."""
    payload = encoded_within(start, max_bytes - DISPATCH_ROOM).decode()
    await insert_queue_row(conn, start.job_id, start.user_id, payload, token_expires_at)


async def withdraw_if_queued(conn: asyncpg.Connection, job_id: uuid.UUID, owner: str) -> bool:
    """In the owner's transaction: a job still waiting in the queue is cancelled here, with no trainer involved."""
    if not await end_in_queue(conn, job_id, "cancelled", queued_only=True):
        return False
    await end_job(conn, job_id, owner, JobStatus.CANCELLED, "cancelled while queued")
    return True


def job_token(secret: str, job_id: uuid.UUID, owner: str, expires_at: datetime, attempt_id: uuid.UUID) -> str:
    """The token of one attempt of the job (deterministic: the same claims give the same token)."""
    claims = JobTokenClaims(job_id=job_id, user_id=owner, expires_at=expires_at, attempt_id=attempt_id)
    return job_token_for(secret, claims)


async def dispatch_once(
    conn: asyncpg.Connection,
    settings: DispatchSettings,
    token_secret: str,
    max_bytes: int,
    signing_key: Ed25519PrivateKey | None = None,
) -> int:
    """One pass in one transaction; how many jobs were dispatched (0 when another replica holds the lock). Each
    start is signed with `signing_key` (None: development without one, unsigned)."""
    async with conn.transaction():
        if not await sql.take_dispatch_lock(conn):
            return 0
        await requeue_lost(conn, settings, token_secret, max_bytes)
        slots = await sql.free_slots(conn, settings.lease_s)
        picks = await pick_jobs(conn, sum(slot.free for slot in slots), settings.per_user)
        trainers = [slot for slot in slots for _ in range(slot.free)]
        sent = 0
        for (job_id, owner), trainer in zip(picks, trainers, strict=False):
            sent += await _dispatch(conn, job_id, owner, trainer, token_secret, max_bytes, signing_key)
        if sent:  # the jobs still waiting moved up: their live streams re-read their place in line
            for waiting in await sql.waiting_jobs(conn, NOTIFY_WAITING):
                await notify_status(conn, waiting, "queued")
        return sent


async def requeue_lost(conn: asyncpg.Connection, settings: DispatchSettings, token_secret: str, max_bytes: int) -> None:
    """Lost attempts (a lease run out, a start never taken): each fenced (a signed cancel of the attempt to its
    trainer), its job queued again or failed after `max_attempts`; its outcome recorded in `job_attempts`."""
    for lost in await sql.lost_attempts(conn, settings.lease_s, settings.start_timeout_s):
        trainer, attempt = lost.trainer_id, lost.attempt_no
        if lost.lease_lost:
            outcome, reason = "lease_lost", f"trainer {trainer} stopped heartbeating (attempt {attempt})"
        else:
            outcome = "start_timeout"
            reason = f"trainer {trainer} did not start attempt {attempt} within {settings.start_timeout_s:g}s"
        await sql.end_attempt(conn, lost.attempt_id, outcome)
        token = job_token(token_secret, lost.job_id, lost.owner_id, lost.token_expires_at, lost.attempt_id)
        fence = signed_cancel(lost.job_id, lost.owner_id, token, attempt_id=lost.attempt_id)
        await enqueue(conn, JOB_COMMANDS, fence, max_bytes)  # same topic and key as the start: behind it
        if attempt < settings.max_attempts:
            log.warning("dispatcher: job %s re-queued: %s", lost.job_id, reason)
            await sql.requeue(conn, lost.job_id, reason)
            continue
        message = f"failed after {attempt} attempt(s): {reason}"
        log.error("dispatcher: job %s %s", lost.job_id, message)
        await fail_job(conn, lost.job_id, lost.owner_id, message)


async def fail_job(conn: asyncpg.Connection, job_id: uuid.UUID, owner: str, message: str) -> None:
    """The job's queue row and its job row end together, failed with `message`."""
    await end_in_queue(conn, job_id, message)
    await end_job(conn, job_id, owner, JobStatus.FAILED, message)


async def pick_jobs(conn: asyncpg.Connection, count: int, per_user: int) -> list[tuple[uuid.UUID, str]]:
    """Up to `count` queued jobs, round-robin across users (least recently served first), within `per_user`."""
    if count <= 0:
        return []
    users = await sql.queued_users(conn)
    # The order of turns: never served (by first queued), then least recently served, then served in this pass.
    turn = {
        u.owner_id: (1, u.last_served.timestamp()) if u.last_served else (0, u.first_queued.timestamp()) for u in users
    }
    room = {u.owner_id: per_user - u.active for u in users}
    taken: dict[str, int] = {owner: 0 for owner in turn}
    picks: list[tuple[uuid.UUID, str]] = []
    clock = 0
    while len(picks) < count:
        ready = [owner for owner in turn if room[owner] > 0]
        if not ready:
            break
        owner = min(ready, key=lambda o: turn[o])
        job_id = await sql.queued_job_of(conn, owner, taken[owner])
        if job_id is None:
            room[owner] = 0
            continue
        picks.append((job_id, owner))
        taken[owner] += 1
        room[owner] -= 1
        clock += 1
        turn[owner] = (2, float(clock))  # to the back of the line
    return picks


async def _dispatch(
    conn: asyncpg.Connection,
    job_id: uuid.UUID,
    owner: str,
    to: sql.FreeTrainer,
    token_secret: str,
    max_bytes: int,
    signing_key: Ed25519PrivateKey | None = None,
) -> int:
    """Send the job to the trainer as a new attempt, its token sealed for the trainer: 1, or 0 when its stored start
    is not one (the job fails)."""
    attempt_id, trainer = uuid.uuid4(), to.trainer_id
    row = await sql.mark_dispatched(conn, job_id, owner, attempt_id, trainer)
    try:
        start = parse_event(row.start_payload or "")
        if not isinstance(start, JobStartEvent):
            raise ValueError(f"a {start.type} event, not a job.start")
    except (ValidationError, ValueError) as exc:  # a start rebuilt by a migration, say: never jam the queue
        message = f"the job's start event could not be read: {type(exc).__name__}"
        log.error("dispatcher: job %s: %s: %s", job_id, message, exc)
        await fail_job(conn, job_id, owner, message)
        return 0
    await sql.insert_attempt(conn, attempt_id, job_id, row.attempt_no, trainer)
    token = job_token(token_secret, job_id, owner, row.token_expires_at, attempt_id)
    event = start.model_copy(
        update={
            "event_id": uuid.uuid4(),
            "trainer_id": trainer,
            "attempt_id": attempt_id,
            "attempt_no": row.attempt_no,
            "job_token": None,
            "sealed_job_token": seal(token, load_public_key(to.sealing_key), binding(job_id, attempt_id, trainer)),
        }
    )
    if signing_key is not None:
        event = signed_start(event, signing_key)
    await enqueue(conn, JOB_COMMANDS, event, max_bytes)
    log.info("dispatcher: job %s attempt %d to trainer %s", job_id, row.attempt_no, trainer)
    return 1
