"""A queued job's place in line and its estimated start, as the dispatcher would serve the queue now.

The order replays the dispatcher's round-robin over the queued jobs (users never served first, then least recently
served; each user's oldest job per turn). The estimate goes by the running jobs' progress (queue/start_estimate.py):
each running job's attempt frees its slot at the pace of its progress so far, or after a typical run (the mean of
the last finished runs, DEFAULT_RUN_S before any) while it has none; each job ahead holds a slot a typical run.
Only the caller's own jobs get a place.
"""

import uuid
from collections import deque
from dataclasses import dataclass

import asyncpg

from epochscope_api.data import queue as sql
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
    mine = await sql.still_queued(conn, job_ids)
    if not mine:
        return {}
    queued = await sql.queued_in_arrival_order(conn, MAX_REPLAYED)
    served = await sql.last_served(conn, list({owner for _, owner in queued}))
    order = replay_turns(queued, {owner: at.timestamp() for owner, at in served.items()})
    starts = await _starts(conn, len(order), lease_s)
    index = {job_id: i for i, job_id in enumerate(order)}
    places = {}
    for job_id in mine:
        i = index.get(job_id, len(order))
        places[job_id] = QueuePlace(i + 1, starts[i] if starts and i < len(starts) else None)
    return places


def replay_turns(queued: list[tuple[uuid.UUID, str]], served: dict[str, float]) -> list[uuid.UUID]:
    """The jobs in the order the dispatcher takes them: users never served (by arrival), then by last service."""
    lines: dict[str, deque[uuid.UUID]] = {}
    for job_id, owner in queued:
        lines.setdefault(owner, deque()).append(job_id)
    first_seen = {owner: i for i, owner in enumerate(lines)}
    turn = {o: (1, served[o], 0) if o in served else (0, 0.0, first_seen[o]) for o in lines}
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
    run_s = await sql.typical_run_s(conn) or DEFAULT_RUN_S
    slots = await sql.live_slots(conn, lease_s)
    jobs = [RunningJob(elapsed, fraction) for elapsed, fraction in await sql.running_attempts(conn)]
    return estimated_starts(jobs, slots, run_s, count)
