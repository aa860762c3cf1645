"""What a queued job's place in line is computed from (service_layer/queue_places.py): the queued jobs in order of
arrival, when each user was last served, the recent runs' length, the live trainers' slots and the running attempts'
progress. The queue holds no job content, so reading it across users leaks nothing but counts and fractions."""

import uuid
from datetime import datetime

import asyncpg

RECENT_RUNS = 50  # finished runs averaged for a typical run's length


async def still_queued(conn: asyncpg.Connection, job_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """Those of `job_ids` still waiting in the queue."""
    rows = await conn.fetch("SELECT job_id FROM job_queue WHERE job_id = ANY($1::uuid[]) AND state = 'queued'", job_ids)
    return [row["job_id"] for row in rows]


async def queued_in_arrival_order(conn: asyncpg.Connection, limit: int) -> list[tuple[uuid.UUID, str]]:
    """The first `limit` queued jobs and their owners, oldest first."""
    rows = await conn.fetch(
        "SELECT job_id, owner_id FROM job_queue WHERE state = 'queued' ORDER BY queued_at, job_id LIMIT $1", limit
    )
    return [(row["job_id"], row["owner_id"]) for row in rows]


async def last_served(conn: asyncpg.Connection, owners: list[str]) -> dict[str, datetime]:
    """Each of `owners` ever dispatched: their last dispatch."""
    rows = await conn.fetch(
        "SELECT owner_id, max(dispatched_at) AS served FROM job_queue WHERE owner_id = ANY($1::text[])"
        " AND dispatched_at IS NOT NULL GROUP BY owner_id",
        owners,
    )
    return {row["owner_id"]: row["served"] for row in rows}


async def typical_run_s(conn: asyncpg.Connection) -> float | None:
    """The mean length of the last RECENT_RUNS finished runs; None before any."""
    run_s = await conn.fetchval(
        "SELECT avg(extract(epoch FROM finished_at - started_at)) FROM (SELECT finished_at, started_at FROM job_queue"
        " WHERE state = 'final' AND started_at IS NOT NULL ORDER BY finished_at DESC LIMIT $1) AS recent",
        RECENT_RUNS,
    )
    return float(run_s) if run_s else None


async def live_slots(conn: asyncpg.Connection, lease_s: float) -> int:
    """The slots of the trainers that heartbeat within `lease_s`."""
    slots = await conn.fetchval(
        "SELECT coalesce(sum(slots), 0) FROM trainers WHERE last_heartbeat_at >= now() - make_interval(secs => $1)",
        lease_s,
    )
    return int(slots)


async def running_attempts(conn: asyncpg.Connection) -> list[tuple[float, float | None]]:
    """Each dispatched or running attempt: seconds since it started (or was dispatched) and its fraction done."""
    rows = await conn.fetch(
        "SELECT extract(epoch FROM now() - coalesce(a.started_at, q.dispatched_at)) AS elapsed, q.fraction_done"
        " FROM job_queue q LEFT JOIN job_attempts a ON a.attempt_id = q.attempt_id"
        " WHERE q.state IN ('dispatched', 'running')"
    )
    return [(float(row["elapsed"] or 0), row["fraction_done"]) for row in rows]
