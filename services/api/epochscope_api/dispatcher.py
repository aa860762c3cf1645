"""The job queue's dispatcher: Postgres holds the queue; a start goes out only for a trainer's free slot.

It runs in the API process beside the outbox relay (it needs the database and publishes through the same outbox,
so a start is never sent without its attempt committed), and one API replica dispatches at a time: each pass
runs in one transaction under `pg_try_advisory_xact_lock`, and the replicas that do not get the lock skip it.

A pass: (1) jobs whose trainer's heartbeat is older than the lease go back to the queue with a new attempt to come,
or, past `max_attempts`, fail with the reason; (2) each live trainer's free slots are its heartbeat's slots minus
the jobs dispatched to it and not final; (3) the slots are filled round-robin across users: the user served least
recently goes first, each user's oldest queued job, within `per_user` concurrency; (4) each dispatch is an attempt
(a new `attempt_id`, `attempt_no` + 1), recorded in `job_attempts`, and its start event (addressed to the trainer,
with the job token recomputed) is queued in the outbox in the same transaction.
"""

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from epochscope_api.errors import EventTooLarge
from epochscope_api.outbox import enqueue
from epochscope_schemas.command_signing import without_job_token
from epochscope_schemas.events import JobStartEvent, encode_event, parse_event
from epochscope_schemas.job_token import JobTokenClaims, job_token_for
from epochscope_schemas.notify import ChangeKind, job_channel
from epochscope_schemas.topics import JOB_COMMANDS, TRAINERS_GROUP

log = logging.getLogger("epochscope.api.dispatcher")

NOTIFY_CHANNEL = "job_queue"
LOCK_KEY = 0x65706F6368  # pg advisory lock: one dispatching API replica at a time
ACTIVE = "('dispatched', 'running')"
NOTIFY_WAITING = 200  # queued jobs told of their new place after a dispatch (the rest see it on their next poll)
GROUP_ADDRESS = f"group:{TRAINERS_GROUP}"  # EPOCHSCOPE_DISPATCH=immediate: the starts' address, no one trainer


@dataclass(frozen=True)
class DispatchSettings:
    lease_s: float = 10.0  # a trainer whose last heartbeat is older has lost its jobs
    max_attempts: int = 3  # dispatches per job before it fails
    per_user: int = 2  # a user's jobs dispatched or running at once
    poll_s: float = 1.0


async def queue_job(conn: asyncpg.Connection, event: JobStartEvent, token_expires_at: datetime, max_bytes: int) -> None:
    """Queue the job in the caller's transaction (EventTooLarge if its start event would not fit the bus)."""
    payload = encode_event(event)
    if len(payload) > max_bytes:
        raise EventTooLarge(len(payload), max_bytes)
    await conn.execute(
        "INSERT INTO job_queue (job_id, owner_id, start_payload, token_expires_at) VALUES ($1, $2, $3, $4)",
        event.job_id,
        event.user_id,
        without_job_token(payload)[0].decode(),
        token_expires_at,
    )
    await conn.execute(f"NOTIFY {NOTIFY_CHANNEL}")


async def dispatch_to_group(
    conn: asyncpg.Connection, job_id: uuid.UUID, owner: str, token_secret: str, max_bytes: int
) -> None:
    """EPOCHSCOPE_DISPATCH=immediate, in the submitting transaction: the job's one attempt goes out now, addressed to
    the trainers' consumer group (the old intake: the member that owns the job's partition runs it)."""
    await _dispatch(conn, job_id, owner, GROUP_ADDRESS, token_secret, max_bytes)


async def dispatch_once(conn: asyncpg.Connection, settings: DispatchSettings, token_secret: str, max_bytes: int) -> int:
    """One pass in one transaction; how many jobs were dispatched (0 when another replica holds the lock)."""
    async with conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", LOCK_KEY):
            return 0
        await expire_leases(conn, settings)
        slots = await free_slots(conn, settings.lease_s)
        picks = await pick_jobs(conn, sum(free for _, free in slots), settings.per_user)
        trainers = [trainer for trainer, free in slots for _ in range(free)]
        for (job_id, owner), trainer in zip(picks, trainers, strict=False):
            await _dispatch(conn, job_id, owner, trainer, token_secret, max_bytes)
        sent = min(len(picks), len(trainers))
        if sent:  # the jobs still waiting moved up: their live streams re-read their place in line
            waiting = await conn.fetch(
                "SELECT job_id FROM job_queue WHERE state = 'queued' ORDER BY queued_at LIMIT $1", NOTIFY_WAITING
            )
            for row in waiting:
                await notify_status(conn, row["job_id"], "queued")
        return sent


async def expire_leases(conn: asyncpg.Connection, settings: DispatchSettings) -> None:
    """Jobs on a trainer that stopped heartbeating: queued again, or failed after `max_attempts`."""
    lost = await conn.fetch(
        "SELECT q.job_id, q.owner_id, q.attempt_id, q.attempt_no, q.trainer_id FROM job_queue q"
        " LEFT JOIN trainers t ON t.trainer_id = q.trainer_id"
        f" WHERE q.state IN {ACTIVE} AND coalesce(t.last_heartbeat_at, q.dispatched_at)"
        " < now() - make_interval(secs => $1) FOR UPDATE OF q",
        settings.lease_s,
    )
    for row in lost:
        reason = f"trainer {row['trainer_id']} stopped heartbeating (attempt {row['attempt_no']})"
        await conn.execute(
            "UPDATE job_attempts SET ended_at = now(), outcome = 'lease_lost' WHERE attempt_id = $1", row["attempt_id"]
        )
        if row["attempt_no"] < settings.max_attempts:
            log.warning("dispatcher: job %s re-queued: %s", row["job_id"], reason)
            await conn.execute(
                "UPDATE job_queue SET state = 'queued', attempt_id = NULL, trainer_id = NULL, last_error = $2"
                " WHERE job_id = $1",
                row["job_id"],
                reason,
            )
            continue
        message = f"failed after {row['attempt_no']} attempt(s): {reason}"
        log.error("dispatcher: job %s %s", row["job_id"], message)
        await conn.execute(
            "UPDATE job_queue SET state = 'final', attempt_id = NULL, last_error = $2, finished_at = now(),"
            " start_payload = NULL WHERE job_id = $1",
            row["job_id"],
            message,
        )
        await _fail_job(conn, row["job_id"], row["owner_id"], message)


async def _fail_job(conn: asyncpg.Connection, job_id: uuid.UUID, owner: str, message: str) -> None:
    async with conn.transaction():  # a savepoint: the job is its owner's row, under row-level security
        await conn.execute("SELECT set_config('app.user_id', $1, true)", owner)
        await conn.execute(
            "UPDATE jobs SET status = 'failed', status_message = $2, finished_at = now(), updated_at = now()"
            " WHERE job_id = $1 AND status IN ('queued', 'running')",
            job_id,
            message,
        )
        await conn.execute("SELECT set_config('app.user_id', '', true)")
    await notify_status(conn, job_id, "failed")


async def notify_status(conn: asyncpg.Connection, job_id: uuid.UUID, status: str) -> None:
    """Tell the job's live stream its status changed, as the writer does."""
    body = json.dumps({"job_id": str(job_id), "kind": ChangeKind.STATUS, "status": status})
    await conn.execute("SELECT pg_notify($1, $2)", job_channel(job_id), body)


async def withdraw_if_queued(conn: asyncpg.Connection, job_id: uuid.UUID) -> bool:
    """In the owner's transaction: a job still waiting in the queue is cancelled here, with no trainer involved."""
    withdrawn = await conn.fetchval(
        "UPDATE job_queue SET state = 'final', finished_at = now(), start_payload = NULL, last_error = 'cancelled'"
        " WHERE job_id = $1 AND state = 'queued' RETURNING job_id",
        job_id,
    )
    if withdrawn is None:
        return False
    await conn.execute(
        "UPDATE jobs SET status = 'cancelled', status_message = 'cancelled while queued', finished_at = now(),"
        " updated_at = now() WHERE job_id = $1 AND status IN ('queued', 'running')",
        job_id,
    )
    await notify_status(conn, job_id, "cancelled")
    return True


async def free_slots(conn: asyncpg.Connection, lease_s: float) -> list[tuple[str, int]]:
    """Live trainers (fresh heartbeat) and their free slots, most free first."""
    rows = await conn.fetch(
        "SELECT t.trainer_id, t.slots - count(q.job_id) AS free FROM trainers t"
        f" LEFT JOIN job_queue q ON q.trainer_id = t.trainer_id AND q.state IN {ACTIVE}"
        " WHERE t.last_heartbeat_at >= now() - make_interval(secs => $1)"
        " GROUP BY t.trainer_id HAVING t.slots - count(q.job_id) > 0 ORDER BY 2 DESC, t.trainer_id",
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
) -> None:
    attempt_id = uuid.uuid4()
    row = await conn.fetchrow(
        "UPDATE job_queue SET state = 'dispatched', attempt_id = $2, attempt_no = attempt_no + 1, trainer_id = $3,"
        " dispatched_at = now() WHERE job_id = $1 RETURNING attempt_no, start_payload, token_expires_at",
        job_id,
        attempt_id,
        trainer,
    )
    await conn.execute(
        "INSERT INTO job_attempts (attempt_id, job_id, attempt_no, trainer_id) VALUES ($1, $2, $3, $4)",
        attempt_id,
        job_id,
        row["attempt_no"],
        trainer,
    )
    claims = JobTokenClaims(job_id=job_id, user_id=owner, expires_at=row["token_expires_at"])
    start = parse_event(row["start_payload"])
    event = start.model_copy(
        update={
            "event_id": uuid.uuid4(),
            "trainer_id": trainer,
            "attempt_id": attempt_id,
            "attempt_no": row["attempt_no"],
            "job_token": job_token_for(token_secret, claims),
        }
    )
    await enqueue(conn, JOB_COMMANDS, event, max_bytes)
    log.info("dispatcher: job %s attempt %d to trainer %s", job_id, row["attempt_no"], trainer)


class Dispatcher:
    """Background task: a pass on every NOTIFY of the queue (a new job, a heartbeat, a job's end) or every poll."""

    def __init__(self, pool: asyncpg.Pool, settings: DispatchSettings, token_secret: str, max_bytes: int) -> None:
        self._pool = pool
        self._settings = settings
        self._token_secret = token_secret
        self._max_bytes = max_bytes
        self._wakeup = asyncio.Event()

    async def run(self) -> None:
        listener = await self._pool.acquire()
        await listener.add_listener(NOTIFY_CHANNEL, self._on_notify)
        try:
            while True:
                try:
                    async with self._pool.acquire() as conn:
                        await dispatch_once(conn, self._settings, self._token_secret, self._max_bytes)
                except Exception as exc:  # the database away: try again on the next pass
                    log.warning("dispatcher: %s: %s", type(exc).__name__, exc)
                try:
                    await asyncio.wait_for(self._wakeup.wait(), timeout=self._settings.poll_s)
                except TimeoutError:
                    pass
                self._wakeup.clear()
        finally:
            await listener.remove_listener(NOTIFY_CHANNEL, self._on_notify)
            await self._pool.release(listener)

    def _on_notify(self, *_: object) -> None:
        self._wakeup.set()
