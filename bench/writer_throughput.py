"""Writer throughput: rows/s applied from Kafka to Postgres, next to a naive consumer and a raw COPY, in one run.

On a fresh embedded Postgres and Tansu broker, N prediction events of realistic size (prompt and
prediction ~300 characters each, a real job token) are produced to training.predictions, keyed by
job id over 8 jobs of 2 users, before anything is timed. Then, on the same events and the same table:

- ours, 1 and 2 `epochscope-writer` processes (one consumer group, default batch size and linger):
  timed from the moment every writer holds its partitions and a fetched batch (they wait on a table
  lock the benchmark releases) until the writers' metrics count all N rows applied and committed;
- naive: one consumer that decodes each event and inserts it in its own transaction (autocommit),
  with no token check and no Kafka offset commits (generous to it), on the first `--naive-events`, timed
  like ours from its first fetched batch in hand;
- raw COPY: the same rows, already built in memory, COPYed by the admin role (no RLS, no conflict
  check): the ceiling of what Postgres can take here.

Then the same again with `--prefill` rows (default 1M) of other jobs already in the table.
Writes bench/results/writer_throughput.json. Usage:
    .venv/bin/python bench/writer_throughput.py [--events N] [--prefill M] [--smoke] [--results-dir DIR]
"""

import argparse
import asyncio
import os
import statistics
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg
from common import RESULTS, ResultRow, console, print_table, write_results
from cpu import children_cpu_seconds, cpu_seconds
from writer_throughput_peers import naive, raw_copy
from writer_throughput_stack import (
    PARTITIONS,
    TOKEN_SECRET,
    TRAINER_PUBLIC_KEY,
    BenchJob,
    Stack,
    balanced_jobs,
    clear_bench_rows,
    count_bench_rows,
    local_stack,
    make_events,
    prefill,
    prepare,
)

from epochscope.ports import free_port
from epochscope.processes import ServiceProcess
from epochscope_schemas.events import PredictionEvent, encode_event
from epochscope_writer.settings import WriterSettings

NAME = "writer_throughput"
TOPIC_PARTITIONS = 2 * PARTITIONS  # the writers subscribe to training.predictions and training.status
MEASUREMENTS = ("copy", "naive", "writers_1", "writers_2")
CPU_UNIT = "CPU-s / 1,000 rows"
TARGETS = {"one_writer_rows_per_s": 20_000, "vs_naive": 10.0, "vs_copy": 0.5, "two_over_one": 1.6}


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text_body = response.read().decode()
    return sum(
        float(line.rpartition(" ")[2])
        for line in text_body.splitlines()
        if not line.startswith("#") and line.split("{", 1)[0].split(" ", 1)[0] == name
    )


@dataclass(frozen=True)
class WriterRun:
    rows_per_s: float
    rows_per_writer: list[float]
    writer_cpu_s: float  # CPU time of the writer processes while timed
    postgres_cpu_s: float  # CPU time of Postgres (every backend and background process) while timed


def postgres_cpu(stack: Stack) -> Callable[[], float]:
    """CPU seconds of every process of the stack's Postgres so far (all of the postmaster's children)."""
    postmaster = int((stack.postgres.data / "postmaster.pid").read_text().split()[0])
    return lambda: children_cpu_seconds(postmaster)


async def writers(stack: Stack, count: int, expected: int, group: str) -> WriterRun:
    """rows/s of `count` writer processes in a fresh consumer group, with each one's share and their CPU time."""
    lock = await asyncpg.connect(stack.postgres.admin_url)
    processes: list[tuple[ServiceProcess, int]] = []
    try:
        # Hold the writers at their first insert until all of them have joined and fetched.
        await lock.execute("BEGIN; LOCK TABLE training_predictions IN SHARE ROW EXCLUSIVE MODE")
        for index in range(count):
            port = free_port()
            env = {
                # named, so that the writer's connections (one per lane) are counted as one process's
                "EPOCHSCOPE_DATABASE_URL": f"{stack.writer_dsn}?application_name={group}-{index}",
                "EPOCHSCOPE_JOB_TOKEN_SECRET": TOKEN_SECRET,
                "EPOCHSCOPE_ACCEPTED_TRAINER_KEYS": TRAINER_PUBLIC_KEY,
                "EPOCHSCOPE_KAFKA_BOOTSTRAP_SERVERS": stack.broker.bootstrap_servers,
                "EPOCHSCOPE_WRITER_GROUP_ID": group,
                "EPOCHSCOPE_WRITER_HEALTH_PORT": str(port),
                "EPOCHSCOPE_LOG_LEVEL": "WARNING",
            }
            process = ServiceProcess(
                f"{group}-{index}", ["epochscope-writer"], env, stack.root / f"{group}-{index}.log"
            )
            process.start()
            processes.append((process, port))
        await _wait_until_blocked(lock, processes)
        pids = [process.process.pid for process, _ in processes if process.process is not None]
        postgres_cpu_now = postgres_cpu(stack)
        writer_cpu = sum(map(cpu_seconds, pids))
        postgres_cpu_s = postgres_cpu_now()
        started = time.perf_counter()
        await lock.execute("COMMIT")
        while True:
            applied = [metric(port, "epochscope_writer_rows_applied_total") for _, port in processes]
            if sum(applied) >= expected:
                return WriterRun(
                    expected / (time.perf_counter() - started),
                    applied,
                    sum(map(cpu_seconds, pids)) - writer_cpu,
                    postgres_cpu_now() - postgres_cpu_s,
                )
            for process, _ in processes:
                if not process.running():
                    raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
            await asyncio.sleep(0.1)
    finally:
        for process, _ in processes:
            process.stop()
        await lock.close()


async def _wait_until_blocked(lock: asyncpg.Connection, processes: list[tuple[ServiceProcess, int]]) -> None:
    """Every writer owns partitions and waits on the lock with a fetched batch (on one of its lanes at least)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            assigned = [metric(port, "epochscope_writer_assigned_partitions") for _, port in processes]
        except OSError:
            assigned = []
        await lock.execute("SELECT pg_stat_clear_snapshot()")  # else this transaction sees its first snapshot
        waiting = await lock.fetchval(  # writers with a connection waiting on the lock
            "SELECT count(DISTINCT application_name) FROM pg_stat_activity"
            " WHERE usename = 'epochscope_writer' AND wait_event_type = 'Lock'"
        )
        if len(assigned) == len(processes) and all(assigned) and sum(assigned) == TOPIC_PARTITIONS:
            if waiting == len(processes):
                return
        for process, _ in processes:
            if not process.running():
                raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
        await asyncio.sleep(0.1)
    raise RuntimeError(
        f"the writers did not all join the group and fetch within 120 s (partitions {assigned}, waiting {waiting})"
    )


async def scenario(
    stack: Stack, jobs: list[BenchJob], events: list[PredictionEvent], naive_events: int, label: str, repeat: int
) -> dict[str, Any]:
    """`repeat` rounds of the four measurements, interleaved so that the machine's other load spreads over all of
    them; each is the median of its rounds. Every run is checked for exactly its rows, no duplicates."""
    runs: dict[str, list[float]] = {name: [] for name in MEASUREMENTS}
    shares: dict[str, list[list[float]]] = {"writers_1": [], "writers_2": []}
    # CPU-s per 1,000 rows: (the writer processes, or raw COPY's client; Postgres)
    cpu: dict[str, list[tuple[float, float]]] = {"copy": [], "writers_1": [], "writers_2": []}
    expected = len(events)
    loads: list[float] = []  # the machine's 1-minute load after each measurement
    for round_index in range(repeat):
        for name in MEASUREMENTS:
            console.print(f"[bold]{label}[/], round {round_index + 1}/{repeat}: {name} ...")
            wanted = min(naive_events, expected) if name == "naive" else expected
            if name == "copy":
                rate, client_cpu_s, postgres_cpu_s = await raw_copy(stack, jobs, events, postgres_cpu(stack))
                cpu[name].append((1000 * client_cpu_s / expected, 1000 * postgres_cpu_s / expected))
            elif name == "naive":
                rate = await naive(stack, jobs, wanted)
            else:
                count = int(name.rsplit("_", 1)[1])
                group = f"bench-{label.replace(' ', '-')}-{count}-{round_index}"
                run = await writers(stack, count, expected, group)
                rate = run.rows_per_s
                shares[name].append(run.rows_per_writer)
                cpu[name].append((1000 * run.writer_cpu_s / expected, 1000 * run.postgres_cpu_s / expected))
            rows, distinct = await count_bench_rows(stack, jobs)
            if (rows, distinct) != (wanted, wanted):
                raise RuntimeError(f"{label} {name}: {rows} rows, {distinct} distinct, expected {wanted}")
            loads.append(os.getloadavg()[0])
            console.print(f"  {rate:,.0f} rows/s (load {loads[-1]:.1f})")
            runs[name].append(rate)
            await clear_bench_rows(stack, jobs)
    return {
        **{name: statistics.median(rates) for name, rates in runs.items()},
        "runs": {name: [round(rate, 1) for rate in rates] for name, rates in runs.items()},
        "load_average_1m": round(statistics.median(loads), 2),
        "rows_per_writer": shares,
        "cpu_s_per_1000_rows": {
            name: {
                ("copy_client" if name == "copy" else "writer_processes"): _median(w for w, _ in pairs),
                "postgres": _median(p for _, p in pairs),
            }
            for name, pairs in cpu.items()
        },
    }


def _median(values: Iterable[float]) -> float:
    return round(statistics.median(values), 4)


def result_rows(results: dict[str, Any], label: str) -> list[ResultRow]:
    one, two = round(results["writers_1"]), round(results["writers_2"])
    cpu = results["cpu_s_per_1000_rows"]
    rows = [
        ResultRow(f"1 writer vs target, {label}", "rows/s", one, TARGETS["one_writer_rows_per_s"], "target"),
        ResultRow(
            f"1 writer vs naive, {label}", "rows/s", one, round(results["naive"], 1), "naive insert+commit per event"
        ),
        ResultRow(f"1 writer vs raw COPY, {label}", "rows/s", one, round(results["copy"]), "raw COPY (ceiling)"),
        ResultRow(f"2 writers vs 1 writer, {label}", "rows/s", two, one, "1 writer"),
        ResultRow(f"2 writers vs raw COPY, {label}", "rows/s", two, round(results["copy"]), "raw COPY (ceiling)"),
        ResultRow(
            f"1 writer process CPU vs raw COPY's client, {label}",
            CPU_UNIT,
            cpu["writers_1"]["writer_processes"],
            cpu["copy"]["copy_client"],
            "raw COPY's client (asyncpg)",
            better="lower",
        ),
        ResultRow(
            f"Postgres CPU, 1 writer vs raw COPY, {label}",
            CPU_UNIT,
            cpu["writers_1"]["postgres"],
            cpu["copy"]["postgres"],
            "Postgres under raw COPY",
            better="lower",
        ),
    ]
    return [replace(row, load_average_1m=results["load_average_1m"]) for row in rows]


async def bench(
    stack: Stack, events_count: int, prefill_rows: int, naive_events: int, durable: bool, repeat: int
) -> dict[str, Any]:
    jobs = balanced_jobs()
    events = make_events(jobs, events_count)
    produce_s = await prepare(stack, jobs, events, durable)
    console.print(f"produced {events_count:,} events in {produce_s:.1f} s")
    empty = await scenario(stack, jobs, events, naive_events, "empty table", repeat)
    prefill_s = await prefill(stack, prefill_rows) if prefill_rows else 0.0
    prefilled = await scenario(stack, jobs, events, naive_events, "prefilled", repeat) if prefill_rows else None
    return {"jobs": jobs, "events": events, "empty": empty, "prefilled": prefilled, "prefill_s": prefill_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="prediction events in the broker (N)")
    parser.add_argument("--prefill", type=int, default=1_000_000, help="rows already in the table; 0 to skip")
    parser.add_argument("--naive-events", type=int, default=3000, help="events the naive consumer applies")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of each measurement; the median is reported")
    parser.add_argument(
        "--no-fsync",
        action="store_true",
        help="keep the local stack's fsync=off, synchronous_commit=off (default: durable commits, as in production)",
    )
    parser.add_argument("--smoke", action="store_true", help="a tiny run that checks the benchmark works")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help=f"where {NAME}.json goes")
    args = parser.parse_args()
    load_at_start = round(os.getloadavg()[0], 2)  # the machine is shared: say how busy it was
    if args.smoke:
        args.events, args.prefill, args.naive_events, args.repeat = 2000, 2000, 200, 1
    with local_stack() as stack:
        measured = asyncio.run(
            bench(stack, args.events, args.prefill, args.naive_events, not args.no_fsync, args.repeat)
        )
    sample = encode_event(measured["events"][0])
    rows = result_rows(measured["empty"], "empty table")
    if measured["prefilled"] is not None:
        rows += result_rows(measured["prefilled"], f"{args.prefill:,} rows prefilled")
    params = {
        "events": args.events,
        "prefill_rows": args.prefill,
        "naive_events": min(args.naive_events, args.events),
        "event_bytes": len(sample),
        "jobs": len(measured["jobs"]),
        "partitions": PARTITIONS,
        "writer_batch_size": WriterSettings.model_fields["writer_batch_size"].default,
        "writer_db_connections": WriterSettings.model_fields["writer_db_connections"].default,
        "writer_linger_ms": WriterSettings.model_fields["writer_linger_ms"].default,
        "durable_commits": not args.no_fsync,
        "load_average_1m_at_start": load_at_start,
        "repeat": args.repeat,
        "smoke": args.smoke,
        "prefill_seconds": round(measured["prefill_s"], 1),
        "measured": {key: value for key, value in measured.items() if key in ("empty", "prefilled")},
        "targets": TARGETS,
    }
    note = "rows/s: higher is better; ratio = ours / peer"
    print_table(f"Writer throughput, {args.events:,} events", rows, caption=note)
    path = write_results(NAME, params, rows, args.results_dir, notes=[note, *_notes()])
    console.print(f"results written to {path}")


def _notes() -> list[str]:
    return [
        "Each run starts on the same N events already in the broker; writers are timed from the moment all of "
        "them hold their partitions and a fetched batch, until their metrics count N rows applied and committed.",
        "naive: decode, then one INSERT ... ON CONFLICT DO NOTHING in its own transaction per event, no token "
        "check, no Kafka offset commits; timed from its first fetched batch in hand, as the writers are.",
        "raw COPY: the writer's own rows, built in memory before timing, COPYed by the admin role (no RLS, no "
        "conflict handling).",
    ]


if __name__ == "__main__":
    main()
