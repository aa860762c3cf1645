"""A queued job's place in line and its estimated start, as the dispatcher would serve the queue now.

The order replays the dispatcher's round-robin over the queued jobs (users never served first, then least recently
served; each user's oldest job per turn). The estimate (`queue_estimate`) goes by the running jobs' progress: each
running job's attempt frees its slot at the pace of its progress so far (`job_queue.fraction_done`, kept by the
writer), or after a typical run (the mean of the last finished runs, DEFAULT_RUN_S before any) while it has none;
each job ahead holds a slot a typical run. The queue holds no job content, so reading it across users leaks nothing
but counts and fractions; only the caller's own jobs get a place.
"""

import uuid
from collections import deque
from dataclasses import dataclass

import asyncpg

from epochscope_api.queue.start_estimate import RunningJob, estimated_starts

DEFAULT_RUN_S = 120.0
MAX_REPLAYED = 10_000  # queued jobs replayed at most; later ones get a place but no estimate past it


@dataclass(frozen=True)
class QueuePlace:
    position: int  # 1: the next job to start
    estimated_start_s: float | None  # seconds from now; None with no live trainer


async def queue_places(
    conn: asyncpg.Connection, job_ids: list[uuid.UUID], lease_s: float
) -> dict[uuid.UUID, QueuePlace]:
    """The place of each of `job_ids` that is still queued; the trainers live (their slots counted) are those the
    dispatcher serves, a heartbeat within `lease_s` (its lease, EPOCHSCOPE_DISPATCH_LEASE_SECONDS)."""
    mine = await conn.fetch("SELECT job_id FROM job_queue WHERE job_id = ANY($1::uuid[]) AND state = 'queued'", job_ids)
    if not mine:
        return {}
    order = await _order(conn)
    starts = await _starts(conn, len(order), lease_s)
    index = {job_id: i for i, job_id in enumerate(order)}
    places = {}
    for row in mine:
        i = index.get(row["job_id"], len(order))
        places[row["job_id"]] = QueuePlace(i + 1, starts[i] if starts and i < len(starts) else None)
    return places


async def _order(conn: asyncpg.Connection) -> list[uuid.UUID]:
    rows = await conn.fetch(
        "SELECT job_id, owner_id FROM job_queue WHERE state = 'queued' ORDER BY queued_at, job_id LIMIT $1",
        MAX_REPLAYED,
    )
    served = dict(
        await conn.fetch(
            "SELECT owner_id, extract(epoch FROM max(dispatched_at)) FROM job_queue"
            " WHERE owner_id = ANY($1::text[]) GROUP BY owner_id",
            list({row["owner_id"] for row in rows}),
        )
    )
    lines: dict[str, deque[uuid.UUID]] = {}
    for row in rows:
        lines.setdefault(row["owner_id"], deque()).append(row["job_id"])
    first_seen = {owner: i for i, owner in enumerate(lines)}
    turn = {o: (1, float(served[o]), 0) if served.get(o) else (0, 0.0, first_seen[o]) for o in lines}
    order: list[uuid.UUID] = []
    clock = 0
    while lines:
        owner = min(lines, key=lambda o: turn[o])
        order.append(lines[owner].popleft())
        if not lines[owner]:
            del lines[owner]
        clock += 1
        turn[owner] = (2, float(clock), 0)
    return order


async def _starts(conn: asyncpg.Connection, count: int, lease_s: float) -> list[float]:
    """Seconds until each of the first `count` queued jobs starts; [] with no live trainer."""
    run_s = await conn.fetchval(
        "SELECT avg(extract(epoch FROM finished_at - started_at)) FROM (SELECT finished_at, started_at FROM job_queue"
        " WHERE state = 'final' AND started_at IS NOT NULL ORDER BY finished_at DESC LIMIT 50) AS recent"
    )
    slots = await conn.fetchval(
        "SELECT coalesce(sum(slots), 0) FROM trainers WHERE last_heartbeat_at >= now() - make_interval(secs => $1)",
        lease_s,
    )
    running = await conn.fetch(
        "SELECT extract(epoch FROM now() - coalesce(a.started_at, q.dispatched_at)) AS elapsed, q.fraction_done"
        " FROM job_queue q LEFT JOIN job_attempts a ON a.attempt_id = q.attempt_id"
        " WHERE q.state IN ('dispatched', 'running')"
    )
    jobs = [RunningJob(float(row["elapsed"] or 0), row["fraction_done"]) for row in running]
    return estimated_starts(jobs, int(slots), float(run_s) if run_s else DEFAULT_RUN_S, count)
