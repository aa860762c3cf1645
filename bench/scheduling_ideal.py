"""The scheduling benchmark's peer: the dispatcher's policy played out on paper, with no latency.

Given the jobs of one measured run (each one's submission time, user, and how long it held its trainer: dispatched
to final), it computes when each would have been dispatched by an ideal dispatcher of the same policy: the instant a
trainer is free and a job is queued, round-robin across users (a user never served first, by first queued; then the
least recently served), at most `per_user` of a user's jobs at once. The job then starts after its own measured
start-up. What separates the measured waits from these is the dispatcher's own cost (polling, heartbeats, the
dispatch round trip), on the same trace and the same jobs.
"""

import heapq
from dataclasses import dataclass


@dataclass(frozen=True)
class Job:
    arrival: float  # seconds from the first submission
    user: str
    startup: float  # dispatched -> running (the child loading)
    duration: float  # running -> final


def ideal_waits(jobs: list[Job], trainers: int, per_user: int) -> list[float]:
    """Each job's submit -> start (running) under the ideal schedule, in the order of `jobs`."""
    order = sorted(range(len(jobs)), key=lambda i: (jobs[i].arrival, i))
    waits = [0.0] * len(jobs)
    queued: list[int] = []
    running: list[tuple[float, int]] = []  # (end, job index)
    active: dict[str, int] = {}
    served: dict[str, tuple[int, float, int]] = {}  # user -> turn key once served
    first_queued: dict[str, float] = {}
    dispatched = 0
    arrived = 0
    now = 0.0
    while arrived < len(order) or queued or running:
        candidates = [jobs[order[arrived]].arrival] if arrived < len(order) else []
        candidates += [running[0][0]] if running else []
        now = max(now, min(candidates))
        while running and running[0][0] <= now:
            _, index = heapq.heappop(running)
            active[jobs[index].user] -= 1
        while arrived < len(order) and jobs[order[arrived]].arrival <= now:
            index = order[arrived]
            queued.append(index)
            first_queued.setdefault(jobs[index].user, jobs[index].arrival)
            arrived += 1
        while len(running) < trainers:
            ready = [i for i in queued if active.get(jobs[i].user, 0) < per_user]
            if not ready:
                break
            users = {jobs[i].user for i in ready}
            user = min(users, key=lambda u: served.get(u, (0, first_queued[u], 0)))
            index = min((i for i in ready if jobs[i].user == user), key=lambda i: (jobs[i].arrival, i))
            queued.remove(index)
            job = jobs[index]
            waits[index] = now - job.arrival + job.startup
            heapq.heappush(running, (now + job.startup + job.duration, index))
            active[user] = active.get(user, 0) + 1
            dispatched += 1
            served[user] = (1, now, dispatched)
    return waits
