"""The job queue's dispatcher: Postgres holds the queue; a start goes out only for a trainer's free slot.

It runs in the API process beside the outbox relay (it needs the database and publishes through the same outbox,
so a start is never sent without its attempt committed), and one API replica dispatches at a time: each pass
runs in one transaction under `pg_try_advisory_xact_lock`, and the replicas that do not get the lock skip it.

A pass: (1) attempts that are lost go back to the queue (a new attempt to come) or, past `max_attempts`, fail with
the reason: those on a trainer whose heartbeat is older than the lease, and those dispatched more than
`start_timeout_s` ago to a trainer that still heartbeats but has not started them (no running status from the
attempt, and no heartbeat naming it); each lost attempt is fenced: a cancel of that attempt only, signed with the
job's token, goes out with the start's topic and key, so a trainer that runs it (partitioned away, or handed the
start late) stops it, and one handed its start after the cancel never runs it; (2) each live trainer's free slots
are its heartbeat's slots minus the jobs dispatched to it and not final, and no more than its heartbeat says are
free (a trainer still busy with a fenced attempt takes nothing new until it has stopped it); (3) the slots are
filled round-robin across users: the user served least recently goes first, each user's oldest queued job, within
`per_user` concurrency; (4) each dispatch is an attempt (a new `attempt_id`, `attempt_no` + 1), recorded in
`job_attempts`, and its start event (addressed to the trainer, with the job token recomputed) is queued in the
outbox in the same transaction.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from pydantic import ValidationError

from epochscope_api.bus.outbox import enqueue
from epochscope_api.queue.entries import NOTIFY_CHANNEL, end_in_queue, end_job, notify_status
from epochscope_api.queue.wakeup import Wakeup
from epochscope_runtime.command_signing import signed_cancel
from epochscope_runtime.job_token import JobTokenClaims, job_token_for
from epochscope_schemas.events import JobStartEvent, JobStatus, parse_event
from epochscope_schemas.topics import JOB_COMMANDS

log = logging.getLogger("epochscope.api.dispatcher")

LOCK_KEY = 0x65706F6368  # pg advisory lock: one dispatching API replica at a time
ACTIVE = "('dispatched', 'running')"
NOTIFY_WAITING = 200  # queued jobs told of their new place after a dispatch (the rest see it on their next poll)

# Attempts lost this pass, with why: the trainer's lease ran out, or it never started what it was sent.
LEASE_LOST = "coalesce(t.last_heartbeat_at, q.dispatched_at) < now() - make_interval(secs => $1)"
LOST_ATTEMPTS = (
    "SELECT q.job_id, q.owner_id, q.attempt_id, q.attempt_no, q.trainer_id, q.token_expires_at,"
    f" {LEASE_LOST} AS lease_lost"
    " FROM job_queue q LEFT JOIN trainers t ON t.trainer_id = q.trainer_id"
    f" WHERE q.state IN {ACTIVE} AND ({LEASE_LOST}"
    "  OR (q.state = 'dispatched' AND q.dispatched_at < now() - make_interval(secs => $2)"
    "   AND t.attempt_id IS DISTINCT FROM q.attempt_id))"
    " ORDER BY q.job_id FOR UPDATE OF q"
)


@dataclass(frozen=True)
class DispatchSettings:
    lease_s: float = 10.0  # a trainer whose last heartbeat is older has lost its jobs
    start_timeout_s: float = 120.0  # a dispatched attempt its (live) trainer has not started by then is sent again
    max_attempts: int = 3  # dispatches per job before it fails
    per_user: int = 2  # a user's jobs dispatched or running at once
    poll_s: float = 1.0


async def dispatch_once(conn: asyncpg.Connection, settings: DispatchSettings, token_secret: str, max_bytes: int) -> int:
    """One pass in one transaction; how many jobs were dispatched (0 when another replica holds the lock)."""
    async with conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", LOCK_KEY):
            return 0
        await requeue_lost(conn, settings, token_secret, max_bytes)
        slots = await free_slots(conn, settings.lease_s)
        picks = await pick_jobs(conn, sum(free for _, free in slots), settings.per_user)
        trainers = [trainer for trainer, free in slots for _ in range(free)]
        sent = 0
        for (job_id, owner), trainer in zip(picks, trainers, strict=False):
            sent += await _dispatch(conn, job_id, owner, trainer, token_secret, max_bytes)
        if sent:  # the jobs still waiting moved up: their live streams re-read their place in line
            waiting = await conn.fetch(
                "SELECT job_id FROM job_queue WHERE state = 'queued' ORDER BY queued_at LIMIT $1", NOTIFY_WAITING
            )
            for row in waiting:
                await notify_status(conn, row["job_id"], "queued")
        return sent


async def requeue_lost(conn: asyncpg.Connection, settings: DispatchSettings, token_secret: str, max_bytes: int) -> None:
    """Lost attempts (a lease run out, a start never taken): each fenced (a signed cancel of the attempt to its
    trainer), its job queued again or failed after `max_attempts`; its outcome recorded in `job_attempts`."""
    for row in await conn.fetch(LOST_ATTEMPTS, settings.lease_s, settings.start_timeout_s):
        trainer, attempt = row["trainer_id"], row["attempt_no"]
        if row["lease_lost"]:
            outcome, reason = "lease_lost", f"trainer {trainer} stopped heartbeating (attempt {attempt})"
        else:
            outcome = "start_timeout"
            reason = f"trainer {trainer} did not start attempt {attempt} within {settings.start_timeout_s:g}s"
        await conn.execute(
            "UPDATE job_attempts SET ended_at = now(), outcome = $2 WHERE attempt_id = $1", row["attempt_id"], outcome
        )
        await _fence(conn, row, token_secret, max_bytes)
        if attempt < settings.max_attempts:
            log.warning("dispatcher: job %s re-queued: %s", row["job_id"], reason)
            await conn.execute(
                "UPDATE job_queue SET state = 'queued', attempt_id = NULL, trainer_id = NULL, last_error = $2"
                " WHERE job_id = $1",
                row["job_id"],
                reason,
            )
            continue
        message = f"failed after {attempt} attempt(s): {reason}"
        log.error("dispatcher: job %s %s", row["job_id"], message)
        await _fail(conn, row["job_id"], row["owner_id"], message)


async def _fail(conn: asyncpg.Connection, job_id: uuid.UUID, owner: str, message: str) -> None:
    """The job's queue row and its job row end together, failed with `message`."""
    await end_in_queue(conn, job_id, message)
    await end_job(conn, job_id, owner, JobStatus.FAILED, message)


def _job_token(token_secret: str, job_id: uuid.UUID, owner: str, expires_at: datetime) -> str:
    """The job's token, recomputed as it was minted at submission (the queue keeps only its expiry)."""
    return job_token_for(token_secret, JobTokenClaims(job_id=job_id, user_id=owner, expires_at=expires_at))


async def _fence(conn: asyncpg.Connection, lost: asyncpg.Record, token_secret: str, max_bytes: int) -> None:
    """Queue a cancel of the lost attempt (only: the job's next attempt is not stopped by it) for its trainer,
    signed with the job's token as the start was; same topic and key as the start, so it lands on its partition."""
    token = _job_token(token_secret, lost["job_id"], lost["owner_id"], lost["token_expires_at"])
    cancel = signed_cancel(lost["job_id"], lost["owner_id"], token, attempt_id=lost["attempt_id"])
    await enqueue(conn, JOB_COMMANDS, cancel, max_bytes)


async def free_slots(conn: asyncpg.Connection, lease_s: float) -> list[tuple[str, int]]:
    """Live trainers (fresh heartbeat) and their free slots, most free first."""
    free = "least(t.slots - count(q.job_id), t.free_slots)"
    rows = await conn.fetch(
        f"SELECT t.trainer_id, {free} AS free FROM trainers t"
        f" LEFT JOIN job_queue q ON q.trainer_id = t.trainer_id AND q.state IN {ACTIVE}"
        " WHERE t.last_heartbeat_at >= now() - make_interval(secs => $1)"
        f" GROUP BY t.trainer_id HAVING {free} > 0 ORDER BY 2 DESC, t.trainer_id",
        lease_s,
    )
    return [(row["trainer_id"], int(row["free"])) for row in rows]


async def pick_jobs(conn: asyncpg.Connection, count: int, per_user: int) -> list[tuple[uuid.UUID, str]]:
    """Up to `count` queued jobs, round-robin across users (least recently served first), within `per_user`."""
    if count <= 0:
        return []
    users = await conn.fetch(
        "SELECT w.owner_id,"
        f" (SELECT count(*) FROM job_queue a WHERE a.owner_id = w.owner_id AND a.state IN {ACTIVE}) AS active,"
        " (SELECT max(dispatched_at) FROM job_queue a WHERE a.owner_id = w.owner_id) AS served,"
        " min(w.queued_at) AS first"
        " FROM job_queue w WHERE w.state = 'queued' GROUP BY w.owner_id"
    )
    # The order of turns: never served (by first queued), then least recently served, then served in this pass.
    turn = {u["owner_id"]: (1, u["served"].timestamp()) if u["served"] else (0, u["first"].timestamp()) for u in users}
    room = {u["owner_id"]: per_user - int(u["active"]) for u in users}
    taken: dict[str, int] = {owner: 0 for owner in turn}
    picks: list[tuple[uuid.UUID, str]] = []
    clock = 0
    while len(picks) < count:
        ready = [owner for owner in turn if room[owner] > 0]
        if not ready:
            break
        owner = min(ready, key=lambda o: turn[o])
        job_id = await conn.fetchval(
            "SELECT job_id FROM job_queue WHERE owner_id = $1 AND state = 'queued' ORDER BY queued_at, job_id"
            " OFFSET $2 LIMIT 1",
            owner,
            taken[owner],
        )
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
    conn: asyncpg.Connection, job_id: uuid.UUID, owner: str, trainer: str, token_secret: str, max_bytes: int
) -> int:
    """Send the job to the trainer as a new attempt: 1, or 0 when its stored start is not one (the job fails)."""
    attempt_id = uuid.uuid4()
    row = await conn.fetchrow(
        "UPDATE job_queue SET state = 'dispatched', attempt_id = $2, attempt_no = attempt_no + 1, trainer_id = $3,"
        " dispatched_at = now(), fraction_done = NULL WHERE job_id = $1"
        " RETURNING attempt_no, start_payload, token_expires_at",
        job_id,
        attempt_id,
        trainer,
    )
    try:
        start = parse_event(row["start_payload"] or "")
        if not isinstance(start, JobStartEvent):
            raise ValueError(f"a {start.type} event, not a job.start")
    except (ValidationError, ValueError) as exc:  # a start rebuilt by a migration, say: never jam the queue
        message = f"the job's start event could not be read: {type(exc).__name__}"
        log.error("dispatcher: job %s: %s: %s", job_id, message, exc)
        await _fail(conn, job_id, owner, message)
        return 0
    await conn.execute(
        "INSERT INTO job_attempts (attempt_id, job_id, attempt_no, trainer_id) VALUES ($1, $2, $3, $4)",
        attempt_id,
        job_id,
        row["attempt_no"],
        trainer,
    )
    event = start.model_copy(
        update={
            "event_id": uuid.uuid4(),
            "trainer_id": trainer,
            "attempt_id": attempt_id,
            "attempt_no": row["attempt_no"],
            "job_token": _job_token(token_secret, job_id, owner, row["token_expires_at"]),
        }
    )
    await enqueue(conn, JOB_COMMANDS, event, max_bytes)
    log.info("dispatcher: job %s attempt %d to trainer %s", job_id, row["attempt_no"], trainer)
    return 1


class Dispatcher:
    """Background task: a pass on every NOTIFY of the queue (a new job, a heartbeat, a job's end) or every poll."""

    def __init__(self, pool: asyncpg.Pool, settings: DispatchSettings, token_secret: str, max_bytes: int) -> None:
        self._pool = pool
        self._settings = settings
        self._token_secret = token_secret
        self._max_bytes = max_bytes

    async def run(self) -> None:
        async with Wakeup(self._pool, NOTIFY_CHANNEL) as wakeup:
            while True:
                try:
                    async with self._pool.acquire() as conn:
                        await dispatch_once(conn, self._settings, self._token_secret, self._max_bytes)
                except Exception as exc:  # the database away: try again on the next pass
                    log.warning("dispatcher: %s: %s", type(exc).__name__, exc)
                await wakeup.wait(self._settings.poll_s)
