"""One stack of the scheduling benchmark: a local stack, the trace played against it, each job's times read back
from the job queue. Used by bench/scheduling.py, which repeats it and compares it with the ideal schedule."""

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from epochscope.local_stack import LocalStack
from epochscope_runtime.catalog import CatalogModel

ROOT = Path(__file__).resolve().parent.parent
TRAINERS = 2
READY_TIMEOUT_S = 120
RUN_TIMEOUT_S = 3600
LOAD_SAMPLE_S = 5.0
COMMON_ENV = {
    # One core per trainer, as each trainer would own its GPU: two jobs at once must not oversubscribe the 2 cores.
    "OMP_NUM_THREADS": "1",
    "EPOCHSCOPE_OUTBOX_POLL_SECONDS": "0.3",
    "EPOCHSCOPE_QUOTA_WRITES_PER_MINUTE": "100000",
    "EPOCHSCOPE_QUOTA_ACTIVE_JOBS": "1000",
}


@dataclass(frozen=True)
class Arrival:
    at: float  # seconds from the first submission
    user: str
    shape: dict[str, int]  # epochs, rows
    long: bool


@dataclass(frozen=True)
class Run:
    job_id: str
    user: str
    long: bool
    arrival: float  # seconds from the first submission
    start: float  # submission -> running
    startup: float  # dispatched -> running (the child loading)
    duration: float  # running -> final
    state: str


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {READY_TIMEOUT_S}s: {what}")
        await asyncio.sleep(0.5)


async def trainers_ready(stack: LocalStack) -> None:
    """The trainers can take jobs: their heartbeats are recorded."""
    conn = await asyncpg.connect(stack.api_database_url)
    try:
        fresh = "SELECT count(*) FROM trainers WHERE last_heartbeat_at > now() - interval '5 seconds'"
        await until(lambda: _at_least(conn.fetchval(fresh), TRAINERS), "the trainers' heartbeats")
    finally:
        await conn.close()


async def _at_least(count: Any, least: int) -> bool:
    return int(await count) >= least


async def sample_load(samples: list[float]) -> None:
    """The machine's 1-minute load average every few seconds: other work on a shared machine slows every job's
    start-up, so a change of load between the two stacks' runs moves their figures apart."""
    while True:
        samples.append(os.getloadavg()[0])
        await asyncio.sleep(LOAD_SAMPLE_S)


async def measure(stack: LocalStack, model_id: str, arrivals: list[Arrival]) -> tuple[list[Run], list[float]]:
    sys.path.insert(0, str(ROOT / "tests"))
    from uploads import chat_rows, upload

    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as client:
        datasets: dict[tuple[str, int], str] = {}
        for arrival in arrivals:
            key = (arrival.user, arrival.shape["rows"])
            if key not in datasets:
                up = await upload(client, stack.mint_token(arrival.user), "train.jsonl", chat_rows(key[1]))
                datasets[key] = up["dataset_id"]
        await trainers_ready(stack)
        loads: list[float] = []
        sampler = asyncio.create_task(sample_load(loads))
        loop = asyncio.get_running_loop()
        began = loop.time()
        submitted: list[tuple[str, Arrival]] = []
        for arrival in arrivals:
            await asyncio.sleep(max(0.0, began + arrival.at - loop.time()))
            config = {
                "model": model_id,
                "dataset_id": datasets[(arrival.user, arrival.shape["rows"])],
                "num_epochs": arrival.shape["epochs"],
                "batch_size": 4,
                "max_length": 64,
                "predictions": {"enabled": False},
            }
            auth = {"Authorization": f"Bearer {stack.mint_token(arrival.user)}"}
            created = await client.post("/v1/jobs", json=config, headers=auth)
            created.raise_for_status()
            submitted.append((created.json()["job_id"], arrival))
    rows = await _until_all_final(stack, [job_id for job_id, _ in submitted])
    sampler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampler
    first = min(row["queued_at"] for row in rows.values())
    runs = []
    for job_id, arrival in submitted:
        row = rows[job_id]
        started = row["started_at"] or row["finished_at"]
        runs.append(
            Run(
                job_id=job_id,
                user=arrival.user,
                long=arrival.long,
                arrival=(row["queued_at"] - first).total_seconds(),
                start=(started - row["queued_at"]).total_seconds(),
                startup=(started - row["dispatched_at"]).total_seconds(),
                duration=(row["finished_at"] - started).total_seconds(),
                state="completed" if row["started_at"] and not row["last_error"] else f"not run: {row['last_error']}",
            )
        )
    return runs, loads


async def _until_all_final(stack: LocalStack, job_ids: list[str]) -> dict[str, asyncpg.Record]:
    conn = await asyncpg.connect(stack.api_database_url)
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while time.monotonic() < deadline:
            rows = await conn.fetch(
                "SELECT job_id::text, queued_at, dispatched_at, started_at, finished_at, last_error FROM job_queue"
                " WHERE job_id = ANY($1::uuid[])",
                job_ids,
            )
            if all(row["finished_at"] for row in rows):
                return {row["job_id"]: row for row in rows}
            await asyncio.sleep(1)
    finally:
        await conn.close()
    raise TimeoutError(f"the jobs did not all end within {RUN_TIMEOUT_S}s")


def run_stack(catalog: list[CatalogModel], arrivals: list[Arrival], root: Path) -> tuple[list[Run], list[float]]:
    stack = LocalStack(root, trainers=TRAINERS, extra_env=COMMON_ENV, models=catalog)
    began = time.monotonic()
    try:
        with stack:
            runs, loads = asyncio.run(measure(stack, catalog[0].id, arrivals))
    finally:
        stack.delete_data()
    took = time.monotonic() - began
    print(f"{len(runs)} jobs in {took:.0f} s (stack start and stop included), mean load {mean(loads):.1f}")
    return runs, loads


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
