"""A queued job's place in line and its estimated start, as the dispatcher would serve the queue now.

The order replays the dispatcher's round-robin over the queued jobs (users never served first, then least recently
served; each user's oldest job per turn). The estimate hands the jobs ahead to the live trainers' slots in that
order: a slot frees when its running job has run a typical job's length (the mean of the last finished runs, or
DEFAULT_RUN_S before any), and each job ahead then holds it that long again. The queue holds no job content, so
reading it across users leaks nothing but counts; only the caller's own jobs get a place.
"""

import heapq
import uuid
from collections import deque
from dataclasses import dataclass

import asyncpg

DEFAULT_RUN_S = 120.0
MAX_REPLAYED = 10_000  # queued jobs replayed at most; later ones get a place but no estimate past it
LEASE_S = 10.0


@dataclass(frozen=True)
class QueuePlace:
    position: int  # 1: the next job to start
    estimated_start_s: float | None  # seconds from now; None with no live trainer


async def queue_places(conn: asyncpg.Connection, job_ids: list[uuid.UUID]) -> dict[uuid.UUID, QueuePlace]:
    """The place of each of `job_ids` that is still queued."""
    mine = await conn.fetch("SELECT job_id FROM job_queue WHERE job_id = ANY($1::uuid[]) AND state = 'queued'", job_ids)
    if not mine:
        return {}
    order = await _order(conn)
    starts = await _starts(conn, len(order))
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


async def _starts(conn: asyncpg.Connection, count: int) -> list[float]:
    """Seconds until each of the first `count` queued jobs starts; [] with no live trainer."""
    run_s = await conn.fetchval(
        "SELECT avg(extract(epoch FROM finished_at - started_at)) FROM (SELECT finished_at, started_at FROM job_queue"
        " WHERE state = 'final' AND started_at IS NOT NULL ORDER BY finished_at DESC LIMIT 50) AS recent"
    )
    run_s = float(run_s) if run_s else DEFAULT_RUN_S
    slots = await conn.fetchval(
        "SELECT coalesce(sum(slots), 0) FROM trainers WHERE last_heartbeat_at >= now() - make_interval(secs => $1)",
        LEASE_S,
    )
    if not slots:
        return []
    elapsed = await conn.fetch(
        "SELECT extract(epoch FROM now() - coalesce(started_at, dispatched_at)) AS s FROM job_queue"
        " WHERE state IN ('dispatched', 'running')"
    )
    free_at = [max(run_s - float(row["s"] or 0), 0.0) for row in elapsed][: int(slots)]
    free_at += [0.0] * (int(slots) - len(free_at))
    heapq.heapify(free_at)
    starts = []
    for _ in range(count):
        at = heapq.heappop(free_at)
        starts.append(round(at, 1))
        heapq.heappush(free_at, at + run_s)
    return starts
