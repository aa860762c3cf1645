"""Scheduling: submit-to-start time and trainer utilisation, the dispatcher against the old group intake.

Two CPU trainers on the local stack, a seeded stream of short and long jobs from three users (the tests' tiny
model). Ours is measured: each job's queued_at, started_at (its first `running` event) and finished_at from the job
queue. The peer, the old intake (one consumer group; a job's key hashes to one of 4 partitions, partitions 0-1 on
one trainer and 2-3 on the other; each trainer runs its partitions' jobs in arrival order, one at a time), is
simulated on the same arrival trace with each job's measured start-up and run time: keeping that path runnable
beside the dispatcher would mean a second set of trainers and topics. Utilisation: run time over 2 x the span
from the first submission to the last end.
"""

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import asyncpg
import httpx
from common import RESULTS, ResultRow, percentile, print_table, write_results

from epochscope.local_stack import LocalStack

NAME = "scheduling"
ROOT = Path(__file__).resolve().parent.parent
PEER_NAME = "old consumer-group intake (simulated on the same trace)"
TRAINERS = 2
PARTITIONS = 4


@dataclass(frozen=True)
class Size:
    jobs: int
    mean_gap_s: float
    long_share: float
    smoke: bool = False


FULL = Size(jobs=10, mean_gap_s=4.0, long_share=0.3)
SMOKE = Size(jobs=5, mean_gap_s=1.0, long_share=0.2, smoke=True)
SHORT = {"epochs": 1, "rows": 8}
LONG = {"epochs": 2, "rows": 160}


@dataclass(frozen=True)
class Run:
    job_id: str
    user: str
    arrival: float  # seconds from the first submission
    startup: float  # dispatched -> running (the child loading)
    start: float  # measured: submission -> running
    duration: float  # running -> final


def trace(size: Size) -> list[tuple[float, str, dict[str, int]]]:
    rng = random.Random(17)
    at, jobs = 0.0, []
    for _ in range(size.jobs):
        jobs.append((at, rng.choice(["ann", "ben", "cat"]), LONG if rng.random() < size.long_share else SHORT))
        at += rng.expovariate(1 / size.mean_gap_s)
    return jobs


async def measure(stack: LocalStack, model_id: str, size: Size) -> list[Run]:
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as client:
        datasets: dict[tuple[str, int], str] = {}
        sys.path.insert(0, str(ROOT / "tests"))
        from uploads import chat_rows, upload

        for _, user, shape in trace(size):
            if (user, shape["rows"]) not in datasets:
                up = await upload(client, stack.mint_token(user), "train.jsonl", chat_rows(shape["rows"]))
                datasets[(user, shape["rows"])] = up["dataset_id"]
        await asyncio.sleep(5)  # the trainers' first heartbeats
        loop = asyncio.get_running_loop()
        began = loop.time()
        submitted: list[tuple[str, str]] = []
        for at, user, shape in trace(size):
            await asyncio.sleep(max(0.0, began + at - loop.time()))
            config = {
                "model": model_id,
                "dataset_id": datasets[(user, shape["rows"])],
                "num_epochs": shape["epochs"],
                "batch_size": 4,
                "max_length": 64,
                "predictions": {"enabled": False},
            }
            auth = {"Authorization": f"Bearer {stack.mint_token(user)}"}
            created = await client.post("/v1/jobs", json=config, headers=auth)
            created.raise_for_status()
            submitted.append((created.json()["job_id"], user))
    conn = await asyncpg.connect(stack.api_database_url)
    try:
        while True:
            rows = await conn.fetch(
                "SELECT job_id::text, queued_at, dispatched_at, started_at, finished_at FROM job_queue"
                " WHERE job_id = ANY($1::uuid[])",
                [job_id for job_id, _ in submitted],
            )
            if all(row["finished_at"] for row in rows):
                break
            await asyncio.sleep(1)
    finally:
        await conn.close()
    by_id = {row["job_id"]: row for row in rows}
    first = min(row["queued_at"] for row in rows)
    runs = []
    for job_id, user in submitted:
        row = by_id[job_id]
        started = row["started_at"] or row["finished_at"]
        runs.append(
            Run(
                job_id,
                user,
                (row["queued_at"] - first).total_seconds(),
                (started - row["dispatched_at"]).total_seconds(),
                (started - row["queued_at"]).total_seconds(),
                (row["finished_at"] - started).total_seconds(),
            )
        )
    return runs


def old_intake(runs: list[Run]) -> tuple[list[float], float]:
    """Submit-to-start of each job and the utilisation, with partitions bound to trainers (range assignment)."""
    free = [0.0] * TRAINERS
    waits, ends = [], []
    for run in sorted(runs, key=lambda r: r.arrival):
        trainer = (zlib.crc32(run.job_id.encode()) % PARTITIONS) * TRAINERS // PARTITIONS
        running = max(run.arrival, free[trainer]) + run.startup
        free[trainer] = running + run.duration
        waits.append(running - run.arrival)
        ends.append(free[trainer])
    return waits, utilisation(runs, max(ends))


def utilisation(runs: list[Run], last_end: float) -> float:
    return sum(run.duration for run in runs) / (TRAINERS * last_end)


def run(size: Size, results_dir: Path) -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_model import build_tiny_model, tiny_catalog

    root = Path(tempfile.mkdtemp(prefix="epochscope-bench-"))
    catalog = tiny_catalog(build_tiny_model(root / "model"))
    env = {"EPOCHSCOPE_OUTBOX_POLL_SECONDS": "0.3", "EPOCHSCOPE_QUOTA_WRITES_PER_MINUTE": "100000"}
    stack = LocalStack(root / "stack", trainers=TRAINERS, extra_env=env, models=catalog)
    try:
        with stack:
            runs = asyncio.run(measure(stack, catalog[0].id, size))
    finally:
        stack.delete_data()
        shutil.rmtree(root, ignore_errors=True)
    ours = [run.start for run in runs]
    ours_util = utilisation(runs, max(run.arrival + run.start + run.duration for run in runs))
    peer, peer_util = old_intake(runs)
    rows = [
        ResultRow(f"submit -> start, p{q}", "s", percentile(ours, q), percentile(peer, q), PEER_NAME) for q in (50, 95)
    ]
    rows.append(ResultRow("trainer utilisation", "fraction", ours_util, peer_util, PEER_NAME, better="higher"))
    print_table(f"{NAME} ({len(runs)} jobs, {TRAINERS} trainers)", rows)
    params = {**asdict(size), "trainers": TRAINERS, "partitions_simulated": PARTITIONS, "short": SHORT, "long": LONG}
    return write_results(NAME, params, rows, results_dir, runs=[asdict(run) for run in runs])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny CI-size run (5 jobs)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args()
    print(run(SMOKE if args.smoke else FULL, args.results_dir))


if __name__ == "__main__":
    main()
