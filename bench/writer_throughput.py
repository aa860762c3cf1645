"""Writer throughput: rows/s applied from Kafka to Postgres, next to a naive consumer and a raw COPY, in one run.

On a fresh embedded Postgres and Tansu broker, N prediction events of realistic size (prompt and
prediction ~300 characters each, a real job token) are produced to training.predictions, keyed by
job id over 8 jobs of 2 users, before anything is timed. Then, on the same events and the same table:

- ours, 1 and 2 `epochscope-writer` processes (one consumer group, default batch size and linger):
  timed from the moment every writer holds its partitions and a fetched batch (they wait on a table
  lock the benchmark releases) until the writers' metrics count all N rows applied and committed;
- naive: one consumer that decodes each event and inserts it in its own transaction (autocommit),
  with no token check and no Kafka offset commits (generous to it), on the first `--naive-events`;
- raw COPY: the same rows, already built in memory, COPYed by the admin role (no RLS, no conflict
  check): the ceiling of what Postgres can take here.

Then the same again with `--prefill` rows (default 1M) of other jobs already in the table.
Writes bench/results/writer_throughput.json. Usage:
    .venv/bin/python bench/writer_throughput.py [--events N] [--prefill M] [--smoke] [--results-dir DIR]
"""

import argparse
import asyncio
import os
import random
import shutil
import statistics
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import murmur2
from common import RESULTS, ResultRow, console, print_table, write_results

from epochscope.broker import TansuBroker, ensure_topics
from epochscope.ports import free_port
from epochscope.postgres import PostgresCluster
from epochscope.processes import ServiceProcess
from epochscope_db.migrate import MigrateSettings, migrate
from epochscope_schemas.events import PredictionEvent, PredictionScores, encode_event, parse_event
from epochscope_schemas.job_token import mint_job_token
from epochscope_schemas.topics import TRAINING_PREDICTIONS
from epochscope_writer.adapters.postgres_tables import PREDICTIONS_TABLE
from epochscope_writer.settings import WriterSettings

NAME = "writer_throughput"
PARTITIONS = 4
JOBS_PER_PARTITION = 2
OWNERS = ("bench-ann", "bench-ben")
SAMPLES_PER_ROUND = 50
TOKEN_SECRET = "writer-throughput-benchmark-secret-0123456789"
WRITER_PASSWORD = "writer-throughput-benchmark"
TOPIC_PARTITIONS = 2 * PARTITIONS  # the writers subscribe to training.predictions and training.status
MEASUREMENTS = ("copy", "naive", "writers_1", "writers_2")
TARGETS = {"one_writer_rows_per_s": 20_000, "vs_naive": 10.0, "vs_copy": 0.5, "two_over_one": 1.6}
WORDS = (
    "the model answer step epoch loss token prompt sample gradient weight layer batch train eval score "
    "value field json list number string name city river mountain year people water light system data"
).split()


@dataclass(frozen=True)
class BenchJob:
    job_id: uuid.UUID
    owner: str
    token: str


@dataclass
class Stack:
    postgres: PostgresCluster
    broker: TansuBroker
    root: Path

    @property
    def writer_dsn(self) -> str:
        return self.postgres.url_for("epochscope_writer", WRITER_PASSWORD)


@contextmanager
def local_stack() -> Iterator[Stack]:
    # As root, Postgres runs as an unprivileged user, who must be able to enter this folder.
    root = Path(tempfile.mkdtemp(prefix="epochscope-bench-writer-"))
    root.chmod(0o755)
    stack = Stack(PostgresCluster(root / "postgres" / "data"), TansuBroker(root / "broker.log"), root)
    try:
        stack.broker.start()
        stack.postgres.start()
        yield stack
    finally:
        stack.broker.stop()
        if stack.postgres.running():
            stack.postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


def balanced_jobs() -> list[BenchJob]:
    """Job ids whose keys land JOBS_PER_PARTITION on each partition, as the producer's partitioner places them."""
    per_partition = {p: 0 for p in range(PARTITIONS)}
    jobs: list[BenchJob] = []
    while len(jobs) < PARTITIONS * JOBS_PER_PARTITION:
        job_id = uuid.uuid4()
        partition = (murmur2(str(job_id).encode()) & 0x7FFFFFFF) % PARTITIONS
        if per_partition[partition] < JOBS_PER_PARTITION:
            per_partition[partition] += 1
            owner = OWNERS[len(jobs) % len(OWNERS)]
            token, _ = mint_job_token(TOKEN_SECRET, job_id, owner, timedelta(days=1))
            jobs.append(BenchJob(job_id, owner, token))
    return jobs


def text(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    length = 0
    while length < chars:
        word = rng.choice(WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:chars]


def make_events(jobs: list[BenchJob], count: int) -> list[PredictionEvent]:
    """`count` predictions spread evenly over the jobs, round by round, as trainers emit them."""
    rng = random.Random(7)
    events = []
    for index in range(count):
        job = jobs[index % len(jobs)]
        n = index // len(jobs)
        step, sample = n // SAMPLES_PER_ROUND, n % SAMPLES_PER_ROUND
        events.append(
            PredictionEvent(
                job_id=job.job_id,
                job_token=job.token,
                round_index=step,
                epoch=step / 10,
                step=step,
                sample_id=f"sample-{sample:05d}",
                sample_index=sample,
                prompt=text(rng, 300),
                ground_truth=text(rng, 80),
                prediction=text(rng, 300),
                tokens_generated=rng.randint(20, 120),
                latency_ms=rng.uniform(5, 80),
                valid=rng.random() < 0.8,
                scores=PredictionScores(exact_match=0.0, f1=rng.random(), rouge_l=rng.random()),
            )
        )
    return events


async def prepare(stack: Stack, jobs: list[BenchJob], events: list[PredictionEvent], durable: bool) -> float:
    """Migrate, create the jobs and the topics, and produce every event; returns the produce time."""
    await migrate(MigrateSettings(admin_database_url=stack.postgres.admin_url, writer_db_password=WRITER_PASSWORD))
    if durable:
        await set_durability(stack)
    await ensure_topics(stack.broker.bootstrap_servers, PARTITIONS)
    conn = await asyncpg.connect(stack.postgres.admin_url)
    try:
        await conn.executemany(
            "INSERT INTO jobs (job_id, owner_id, config, token_expires_at)"
            " VALUES ($1, $2, '{}', now() + interval '1 day')",
            [(job.job_id, job.owner) for job in jobs],
        )
    finally:
        await conn.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.broker.bootstrap_servers, acks="all", linger_ms=20, max_batch_size=1 << 20
    )
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for event in events:
            pending.append(
                await producer.send(TRAINING_PREDICTIONS, encode_event(event), key=str(event.job_id).encode())
            )
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def set_durability(stack: Stack) -> None:
    """Commits as durable as a production Postgres: the local stack turns fsync and synchronous commit off."""
    conn = await asyncpg.connect(stack.postgres.admin_url)
    try:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            await conn.execute(f"ALTER SYSTEM SET {setting} = on")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


async def prefill(stack: Stack, rows: int) -> float:
    """`rows` predictions of 100 other jobs, of the same shape, inserted server-side; returns the time taken."""
    started = time.perf_counter()
    conn = await asyncpg.connect(stack.postgres.admin_url, command_timeout=3600)
    try:
        await conn.execute(
            "INSERT INTO jobs (job_id, owner_id, config, token_expires_at)"
            " SELECT gen_random_uuid(), 'prefill-' || (g % 10), '{}', now() + interval '1 day'"
            " FROM generate_series(1, 100) g"
        )
        per_job = max(rows // 100, 1)
        await conn.execute(
            """
            INSERT INTO training_predictions (job_id, step, sample_id, owner_id, round_index, epoch, sample_index,
                prompt, ground_truth, prediction, tokens_generated, latency_ms, valid, exact_match, f1, rouge_l,
                event_id, occurred_at)
            SELECT j.job_id, g / 50, 'sample-' || lpad((g % 50)::text, 5, '0'), j.owner_id, g / 50, g / 500.0, g % 50,
                repeat(md5(g::text), 10)::varchar(300), repeat(md5((g + 1)::text), 3)::varchar(80),
                repeat(md5((g + 2)::text), 10)::varchar(300), 64, 12.5, true, 0, 0.5, 0.5, gen_random_uuid(), now()
            FROM jobs j CROSS JOIN generate_series(0, $1 - 1) g
            WHERE j.owner_id LIKE 'prefill-%'
            """,
            per_job,
        )
        await conn.execute("VACUUM ANALYZE training_predictions")
    finally:
        await conn.close()
    return time.perf_counter() - started


async def clear_bench_rows(stack: Stack, jobs: list[BenchJob]) -> None:
    """Remove the benchmark's rows between runs, and vacuum, so each run starts from the same table."""
    conn = await asyncpg.connect(stack.postgres.admin_url, command_timeout=3600)
    try:
        await conn.execute("DELETE FROM training_predictions WHERE job_id = ANY($1::uuid[])", [j.job_id for j in jobs])
        await conn.execute("VACUUM ANALYZE training_predictions")
    finally:
        await conn.close()


async def count_bench_rows(stack: Stack, jobs: list[BenchJob]) -> tuple[int, int]:
    """(rows, distinct natural keys) of the benchmark's jobs."""
    conn = await asyncpg.connect(stack.postgres.admin_url)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS n, count(DISTINCT (job_id, step, sample_id)) AS d FROM training_predictions"
            " WHERE job_id = ANY($1::uuid[])",
            [j.job_id for j in jobs],
        )
        return row["n"], row["d"]
    finally:
        await conn.close()


async def raw_copy(stack: Stack, jobs: list[BenchJob], events: list[PredictionEvent]) -> float:
    """rows/s of COPY of the writer's own rows (built before timing) into the table, as the admin."""
    owners = {job.job_id: job.owner for job in jobs}
    rows = [PREDICTIONS_TABLE.row(event, owners[event.job_id]) for event in events]
    conn = await asyncpg.connect(stack.postgres.admin_url, command_timeout=3600)
    try:
        started = time.perf_counter()
        await conn.copy_records_to_table("training_predictions", records=rows, columns=PREDICTIONS_TABLE.column_names)
        return len(rows) / (time.perf_counter() - started)
    finally:
        await conn.close()


async def naive(stack: Stack, jobs: list[BenchJob], count: int) -> float:
    """rows/s of a consumer that inserts and commits one event at a time (the first `count` events)."""
    owners = {job.job_id: job.owner for job in jobs}
    columns = ", ".join(PREDICTIONS_TABLE.column_names)
    values = ", ".join(f"${i}" for i in range(1, len(PREDICTIONS_TABLE.columns) + 1))
    insert = f"INSERT INTO training_predictions ({columns}) VALUES ({values}) ON CONFLICT DO NOTHING"
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.broker.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    conn = await asyncpg.connect(stack.writer_dsn)
    try:
        partitions = [TopicPartition(TRAINING_PREDICTIONS, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        acting_as = None
        done = 0
        started = time.perf_counter()
        while done < count:
            for messages in (await consumer.getmany(timeout_ms=1000, max_records=500)).values():
                for message in messages:
                    if done == count:
                        break
                    event = parse_event(message.value)
                    assert isinstance(event, PredictionEvent)
                    owner = owners[event.job_id]
                    if owner != acting_as:  # the RLS user for the session, set only when it changes
                        await conn.execute("SELECT set_config('app.user_id', $1, false)", owner)
                        acting_as = owner
                    await conn.execute(insert, *PREDICTIONS_TABLE.row(event, owner))
                    done += 1
        return count / (time.perf_counter() - started)
    finally:
        await conn.close()
        await consumer.stop()


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
    postgres_cpu_s: float  # CPU time of their database backends while timed


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
                "EPOCHSCOPE_DATABASE_URL": stack.writer_dsn,
                "EPOCHSCOPE_JOB_TOKEN_SECRET": TOKEN_SECRET,
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
        backends = await lock.fetch("SELECT pid FROM pg_stat_activity WHERE usename = 'epochscope_writer'")
        pids = [process.process.pid for process, _ in processes if process.process is not None]
        backend_pids = [row["pid"] for row in backends]
        writer_cpu = sum(map(cpu_seconds, pids))
        postgres_cpu = sum(map(cpu_seconds, backend_pids))
        started = time.perf_counter()
        await lock.execute("COMMIT")
        while True:
            applied = [metric(port, "epochscope_writer_rows_applied_total") for _, port in processes]
            if sum(applied) >= expected:
                return WriterRun(
                    expected / (time.perf_counter() - started),
                    applied,
                    sum(map(cpu_seconds, pids)) - writer_cpu,
                    sum(map(cpu_seconds, backend_pids)) - postgres_cpu,
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
    """Every writer owns partitions and waits on the lock with a fetched batch."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            assigned = [metric(port, "epochscope_writer_assigned_partitions") for _, port in processes]
        except OSError:
            assigned = []
        await lock.execute("SELECT pg_stat_clear_snapshot()")  # else this transaction sees its first snapshot
        waiting = await lock.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = 'epochscope_writer' AND wait_event_type = 'Lock'"
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
    cpu: dict[str, list[tuple[float, float]]] = {"writers_1": [], "writers_2": []}  # µs per row: writers, postgres
    expected = len(events)
    for round_index in range(repeat):
        for name in MEASUREMENTS:
            console.print(f"[bold]{label}[/], round {round_index + 1}/{repeat}: {name} ...")
            wanted = min(naive_events, expected) if name == "naive" else expected
            if name == "copy":
                rate = await raw_copy(stack, jobs, events)
            elif name == "naive":
                rate = await naive(stack, jobs, wanted)
            else:
                count = int(name.rsplit("_", 1)[1])
                group = f"bench-{label.replace(' ', '-')}-{count}-{round_index}"
                run = await writers(stack, count, expected, group)
                rate = run.rows_per_s
                shares[name].append(run.rows_per_writer)
                cpu[name].append((1e6 * run.writer_cpu_s / expected, 1e6 * run.postgres_cpu_s / expected))
            rows, distinct = await count_bench_rows(stack, jobs)
            if (rows, distinct) != (wanted, wanted):
                raise RuntimeError(f"{label} {name}: {rows} rows, {distinct} distinct, expected {wanted}")
            console.print(f"  {rate:,.0f} rows/s")
            runs[name].append(rate)
            await clear_bench_rows(stack, jobs)
    return {
        **{name: statistics.median(rates) for name, rates in runs.items()},
        "runs": {name: [round(rate, 1) for rate in rates] for name, rates in runs.items()},
        "rows_per_writer": shares,
        "cpu_us_per_row": {
            name: {
                "writer_processes": round(statistics.median(w for w, _ in pairs), 1),
                "their_postgres_backends": round(statistics.median(p for _, p in pairs), 1),
            }
            for name, pairs in cpu.items()
        },
    }


def result_rows(results: dict[str, Any], label: str) -> list[ResultRow]:
    one, two = round(results["writers_1"]), round(results["writers_2"])
    return [
        ResultRow(f"1 writer vs target, {label}", "rows/s", one, TARGETS["one_writer_rows_per_s"], "target"),
        ResultRow(
            f"1 writer vs naive, {label}", "rows/s", one, round(results["naive"], 1), "naive insert+commit per event"
        ),
        ResultRow(f"1 writer vs raw COPY, {label}", "rows/s", one, round(results["copy"]), "raw COPY (ceiling)"),
        ResultRow(f"2 writers vs 1 writer, {label}", "rows/s", two, one, "1 writer"),
        ResultRow(f"2 writers vs raw COPY, {label}", "rows/s", two, round(results["copy"]), "raw COPY (ceiling)"),
    ]


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
        "check, no Kafka offset commits.",
        "raw COPY: the writer's own rows, built in memory before timing, COPYed by the admin role (no RLS, no "
        "conflict handling).",
    ]


if __name__ == "__main__":
    main()
