"""When each queued job should start, from the running jobs' progress: pure arithmetic, no database.

A running job with progress (a fraction f of its steps done after `elapsed` seconds of its attempt) frees its slot
in elapsed * (1 - f) / f: the rest of its steps at the pace so far. One without progress yet (loading, or just
dispatched) frees it when it has run a typical job's length (the mean of the recent runs). Each job ahead in line
then holds the slot it takes for that typical length, since a queued job has no progress to go by.
"""

import heapq
from dataclasses import dataclass


@dataclass(frozen=True)
class RunningJob:
    elapsed_s: float  # since its current attempt started (or was dispatched, before it started)
    fraction_done: float | None  # its latest progress event's step / max_steps; None before any


def remaining_s(job: RunningJob, typical_run_s: float) -> float:
    """Seconds until the job's slot is free."""
    fraction = job.fraction_done
    if fraction is not None and fraction > 0:
        return max(job.elapsed_s, 0.0) * (1 - min(fraction, 1.0)) / min(fraction, 1.0)
    return max(typical_run_s - job.elapsed_s, 0.0)


def estimated_starts(running: list[RunningJob], slots: int, typical_run_s: float, count: int) -> list[float]:
    """Seconds from now until each of the next `count` queued jobs starts, in line order; [] with no slot.

    The `slots` live slots free at the running jobs' remaining times (a slot with no running job is free now,
    and more running jobs than slots take the soonest-freeing ones); each job in line takes the slot that frees
    first and holds it for `typical_run_s`.
    """
    if slots <= 0:
        return []
    free_at = sorted(remaining_s(job, typical_run_s) for job in running)[:slots]
    free_at += [0.0] * (slots - len(free_at))
    heapq.heapify(free_at)
    starts = []
    for _ in range(count):
        at = heapq.heappop(free_at)
        starts.append(round(at, 1))
        heapq.heappush(free_at, at + typical_run_s)
    return starts
