"""The writer throughput benchmark's stack and data: a fresh Postgres and Tansu broker, the jobs, the events.

Shared by bench/writer_throughput.py (the measurements) and bench/writer_throughput_peers.py (what they are
compared with).
"""

import asyncio
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from epochscope.broker import TansuBroker, ensure_topics
from epochscope.postgres import PostgresCluster
from epochscope_db.migrate import MigrateSettings, migrate
from epochscope_runtime.dispatch_keys import new_key_pair
from epochscope_runtime.job_token import mint_job_token
from epochscope_schemas.events import PredictionEvent, PredictionScores, encode_event
from epochscope_schemas.topics import TRAINING_PREDICTIONS

PARTITIONS = 4
JOBS_PER_PARTITION = 2
OWNERS = ("bench-ann", "bench-ben")
SAMPLES_PER_ROUND = 50
TOKEN_SECRET = "writer-throughput-benchmark-secret-0123456789"
TRAINER_PUBLIC_KEY = new_key_pair()[1]  # the one trainer identity the writers accept (no trainer runs here)
WRITER_PASSWORD = "writer-throughput-benchmark"
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
    root = Path(tempfile.mkdtemp(prefix="epochscope-bench-writer-"))
    stack = Stack(PostgresCluster.for_stack(root), TansuBroker(root / "broker.log"), root)
    try:
        stack.broker.start()
        stack.postgres.start()
        yield stack
    finally:
        stack.broker.stop()
        stack.postgres.delete()
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
    await migrate(
        MigrateSettings(
            admin_database_url=stack.postgres.admin_url, writer_db_password=WRITER_PASSWORD, environment="development"
        )
    )
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
