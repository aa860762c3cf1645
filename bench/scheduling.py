"""Scheduling: submit-to-start time and trainer utilisation, the dispatcher against the old group intake, both run.

One script run starts two local stacks, one after the other (never at once: the machine's cores are the trainers'),
each with 2 CPU trainers and the tests' tiny model, and plays the same seeded arrival trace against each: short and
long jobs from three users, one of whom submits a burst.
- Ours, the dispatcher (EPOCHSCOPE_DISPATCH=fair): trainers heartbeat; a start goes to a free trainer, users in turn.
- The peer, today's consumer-group intake, run for real: the API publishes each start at submission
  (EPOCHSCOPE_DISPATCH=immediate) and the trainers share one "trainers" consumer group over the 4 partitions of
  jobs.commands (EPOCHSCOPE_TRAINER_INTAKE=group): a job's key picks its partition, hence its trainer, which runs
  its partitions' jobs in arrival order, one at a time, and commits after each.
Both are measured alike, from the job queue: queued_at (submission), started_at (the first `running` event) and
finished_at. Utilisation: run time (running -> final) over 2 trainers x the makespan (first submission to last end).
"""

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka.admin import AIOKafkaAdminClient
from common import RESULTS, ResultRow, percentile, print_table, write_results

from epochscope.local_stack import PARTITIONS, LocalStack
from epochscope_schemas.catalog import CatalogModel
from epochscope_schemas.topics import TRAINERS_GROUP

NAME = "scheduling"
ROOT = Path(__file__).resolve().parent.parent
PEER_NAME = "old consumer-group intake (run)"
TRAINERS = 2
USERS = ("ann", "ben", "cat")
BURST_USER = "ben"
SHORT = {"epochs": 1, "rows": 8}
LONG = {"epochs": 2, "rows": 64}
SEED = 17
READY_TIMEOUT_S = 120
RUN_TIMEOUT_S = 3600
COMMON_ENV = {
    "EPOCHSCOPE_OUTBOX_POLL_SECONDS": "0.3",
    "EPOCHSCOPE_QUOTA_WRITES_PER_MINUTE": "100000",
    "EPOCHSCOPE_QUOTA_ACTIVE_JOBS": "1000",
}
MODES = {
    "dispatcher": {"EPOCHSCOPE_DISPATCH": "fair"},
    "old_intake": {
        "EPOCHSCOPE_DISPATCH": "immediate",
        "EPOCHSCOPE_TRAINER_INTAKE": "group",
        "EPOCHSCOPE_TRAINER_HEARTBEAT_S": "0",  # the old trainer announced nothing
    },
}


@dataclass(frozen=True)
class Size:
    stream: int  # jobs arriving one by one, from any user
    mean_gap_s: float  # between the stream's arrivals (exponential)
    burst: int  # jobs BURST_USER submits at once, a quarter into the stream
    long_share: float
    smoke: bool = False


FULL = Size(stream=11, mean_gap_s=6.0, burst=5, long_share=0.3)
SMOKE = Size(stream=3, mean_gap_s=1.0, burst=1, long_share=0.0, smoke=True)


@dataclass(frozen=True)
class Arrival:
    at: float  # seconds from the first submission
    user: str
    shape: dict[str, int]


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


def trace(size: Size) -> list[Arrival]:
    """The seeded arrivals, in order: the same for both stacks."""
    rng = random.Random(SEED)

    def shape() -> dict[str, int]:
        return LONG if rng.random() < size.long_share else SHORT

    at, arrivals = 0.0, []
    for index in range(size.stream):
        if index == size.stream // 4:
            arrivals += [Arrival(at, BURST_USER, shape()) for _ in range(size.burst)]
        arrivals.append(Arrival(at, rng.choice(USERS), shape()))
        at += rng.expovariate(1 / size.mean_gap_s)
    return arrivals


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {READY_TIMEOUT_S}s: {what}")
        await asyncio.sleep(0.5)


async def trainers_ready(stack: LocalStack, mode: str) -> None:
    """The trainers can take jobs: heartbeats recorded (dispatcher), or the group stable with each trainer holding
    its partitions (old intake): a rebalance mid-run would hand a running job's partition to the other trainer."""
    if mode == "dispatcher":
        conn = await asyncpg.connect(stack.api_database_url)
        try:
            fresh = "SELECT count(*) FROM trainers WHERE last_heartbeat_at > now() - interval '5 seconds'"
            await until(lambda: _at_least(conn.fetchval(fresh), TRAINERS), "the trainers' heartbeats")
        finally:
            await conn.close()
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.broker.bootstrap_servers)
    await admin.start()
    try:
        await until(lambda: _group_stable(admin), f"the {TRAINERS_GROUP} group stable with {TRAINERS} members")
    finally:
        await admin.close()


async def _at_least(count: Any, least: int) -> bool:
    return int(await count) >= least


async def _group_stable(admin: AIOKafkaAdminClient) -> bool:
    (response,) = await admin.describe_consumer_groups([TRAINERS_GROUP])
    (group,) = response.groups  # (error_code, group, state, protocol_type, protocol, members, ...)
    return group[0] == 0 and group[2] == "Stable" and len(group[5]) == TRAINERS


async def measure(stack: LocalStack, mode: str, model_id: str, arrivals: list[Arrival]) -> list[Run]:
    sys.path.insert(0, str(ROOT / "tests"))
    from uploads import chat_rows, upload

    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as client:
        datasets: dict[tuple[str, int], str] = {}
        for arrival in arrivals:
            key = (arrival.user, arrival.shape["rows"])
            if key not in datasets:
                up = await upload(client, stack.mint_token(arrival.user), "train.jsonl", chat_rows(key[1]))
                datasets[key] = up["dataset_id"]
        await trainers_ready(stack, mode)
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
    first = min(row["queued_at"] for row in rows.values())
    runs = []
    for job_id, arrival in submitted:
        row = rows[job_id]
        started = row["started_at"] or row["finished_at"]
        runs.append(
            Run(
                job_id=job_id,
                user=arrival.user,
                long=arrival.shape == LONG,
                arrival=(row["queued_at"] - first).total_seconds(),
                start=(started - row["queued_at"]).total_seconds(),
                startup=(started - row["dispatched_at"]).total_seconds(),
                duration=(row["finished_at"] - started).total_seconds(),
                state="completed" if row["started_at"] and not row["last_error"] else f"not run: {row['last_error']}",
            )
        )
    return runs


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


def run_stack(mode: str, catalog: list[CatalogModel], arrivals: list[Arrival], root: Path) -> list[Run]:
    stack = LocalStack(root / mode, trainers=TRAINERS, extra_env={**COMMON_ENV, **MODES[mode]}, models=catalog)
    began = time.monotonic()
    try:
        with stack:
            runs = asyncio.run(measure(stack, mode, catalog[0].id, arrivals))
    finally:
        stack.delete_data()
    print(f"{mode}: {len(runs)} jobs in {time.monotonic() - began:.0f} s (stack start and stop included)")
    return runs


@dataclass(frozen=True)
class Figures:
    p50: float
    p95: float
    mean: float
    utilisation: float
    makespan: float


def figures(runs: list[Run]) -> Figures:
    waits = [run.start for run in runs]
    makespan = max(run.arrival + run.start + run.duration for run in runs)
    busy = sum(run.duration for run in runs)
    return Figures(
        percentile(waits, 50), percentile(waits, 95), sum(waits) / len(waits), busy / (TRAINERS * makespan), makespan
    )


def run(size: Size, results_dir: Path) -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_model import build_tiny_model, tiny_catalog

    root = Path(tempfile.mkdtemp(prefix="epochscope-bench-"))
    arrivals = trace(size)
    try:
        catalog = tiny_catalog(build_tiny_model(root / "model"))
        runs = {mode: run_stack(mode, catalog, arrivals, root) for mode in MODES}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ours, peer = figures(runs["dispatcher"]), figures(runs["old_intake"])
    rows = [
        ResultRow("submit -> start, p50", "s", ours.p50, peer.p50, PEER_NAME),
        ResultRow("submit -> start, p95", "s", ours.p95, peer.p95, PEER_NAME),
        ResultRow("submit -> start, mean", "s", ours.mean, peer.mean, PEER_NAME),
        ResultRow("trainer utilisation", "fraction", ours.utilisation, peer.utilisation, PEER_NAME, better="higher"),
        ResultRow("makespan", "s", ours.makespan, peer.makespan, PEER_NAME),
    ]
    print_table(f"{NAME} ({len(arrivals)} jobs, {TRAINERS} trainers, ours = dispatcher)", rows)
    params = {
        **asdict(size),
        "jobs": len(arrivals),
        "long_jobs": sum(arrival.shape == LONG for arrival in arrivals),
        "trainers": TRAINERS,
        "partitions": PARTITIONS,
        "users": list(USERS),
        "burst_user": BURST_USER,
        "short": SHORT,
        "long": LONG,
        "seed": SEED,
    }
    by_mode = {mode: [asdict(r) for r in mode_runs] for mode, mode_runs in runs.items()}
    return write_results(NAME, params, rows, results_dir, runs=by_mode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny run (4 jobs on each stack)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    print(run(SMOKE if args.smoke else FULL, args.results_dir))


if __name__ == "__main__":
    main()
