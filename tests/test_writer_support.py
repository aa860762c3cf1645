"""Test helpers for the writer tests: the local stack's own Postgres, broker and service processes, nothing mocked.

Postgres can be stopped and started (an outage); writers run as `epochscope-writer` subprocesses, so they
can be killed with SIGKILL. Fixtures are module-scoped: each test file gets a fresh database and broker.
"""

import asyncio
import base64
import json
import shutil
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from conftest import ARTIFACTS, traversable_temp_dir

from epochscope.broker import TansuBroker, ensure_topics
from epochscope.ports import free_port
from epochscope.postgres import PostgresCluster
from epochscope.processes import ServiceProcess
from epochscope_db.migrate import MigrateSettings, migrate
from epochscope_schemas.events import (
    Envelope,
    JobStatus,
    JobStatusEvent,
    PredictionEvent,
    PredictionScores,
    ProgressEvent,
    RoundSummaryEvent,
    WarningEvent,
    encode_event,
)
from epochscope_schemas.job_token import mint_job_token
from epochscope_schemas.topics import TRAINING_PREDICTIONS, TRAINING_STATUS, WRITERS_GROUP, dead_letter_topic

JOB_TOKEN_SECRET = "writer-tests-job-token-secret-0123456789"
WRITER_DB_PASSWORD = "writer-test-password"
PARTITIONS = 4


class WriterProcess:
    """An `epochscope-writer` service process with its own health port, probed over HTTP."""

    def __init__(self, name: str, env: dict[str, str], log_path: Path) -> None:
        self.health_port = free_port()
        self.service = ServiceProcess(
            name, ["epochscope-writer"], {**env, "EPOCHSCOPE_WRITER_HEALTH_PORT": str(self.health_port)}, log_path
        )

    def start(self) -> "WriterProcess":
        self.service.start()
        return self

    def kill(self) -> None:
        self.service.kill()

    def terminate(self) -> int | None:
        return self.service.stop()

    def running(self) -> bool:
        return self.service.running()

    def get(self, path: str) -> tuple[int, str]:
        """(status, body) of a GET on the health server; (0, "") when nothing answers."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}{path}", timeout=2) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            return 0, ""

    def metric(self, name: str, **labels: str) -> float:
        """Sum of one Prometheus metric's samples matching the labels (0 when absent)."""
        _, text = self.get("/metrics")
        total = 0.0
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            series, _, value = line.rpartition(" ")
            if series.split("{", 1)[0] == name and all(f'{k}="{v}"' in series for k, v in labels.items()):
                total += float(value)
        return total

    def log_text(self, chars: int = 3000) -> str:
        return self.service.log_tail(chars)


@dataclass
class Stack:
    """A migrated database, a broker with every topic, and the writers a test started."""

    postgres: PostgresCluster
    broker: TansuBroker
    root: Path
    writers: list[WriterProcess] = field(default_factory=list)

    @property
    def admin_dsn(self) -> str:
        return self.postgres.admin_url

    @property
    def writer_dsn(self) -> str:
        return self.postgres.url_for("epochscope_writer", WRITER_DB_PASSWORD)

    def writer_env(self, **overrides: str) -> dict[str, str]:
        return {
            "EPOCHSCOPE_DATABASE_URL": self.writer_dsn,
            "EPOCHSCOPE_JOB_TOKEN_SECRET": JOB_TOKEN_SECRET,
            "EPOCHSCOPE_KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap_servers,
            "EPOCHSCOPE_WRITER_LINGER_MS": "20",
            "EPOCHSCOPE_WRITER_RETRY_MAX_S": "1",
            "EPOCHSCOPE_WRITER_DB_CONNECT_TIMEOUT_S": "2",
            **overrides,
        }

    def start_writer(self, **env: str) -> WriterProcess:
        name = f"writer-{len(self.writers)}"
        writer = WriterProcess(name, self.writer_env(**env), self.root / f"{name}.log")
        self.writers.append(writer)
        return writer.start()


def start_stack(root: Path) -> Stack:
    """Postgres migrated by epochscope_db, and a broker with every topic and dead-letter topic."""
    postgres = PostgresCluster(root / "postgres" / "data")
    broker = TansuBroker(root / "broker.log")
    broker.start()
    postgres.start()
    stack = Stack(postgres, broker, root)
    asyncio.run(_prepare(stack))
    return stack


async def _prepare(stack: Stack) -> None:
    await migrate(MigrateSettings(admin_database_url=stack.admin_dsn, writer_db_password=WRITER_DB_PASSWORD))
    await ensure_topics(stack.broker.bootstrap_servers, PARTITIONS)


def stop_stack(stack: Stack) -> None:
    for writer in stack.writers:
        writer.terminate()
    stack.broker.stop()
    if stack.postgres.running():
        stack.postgres.stop()


@pytest.fixture(scope="module", name="stack")
def stack_fixture() -> Iterator[Stack]:
    root = traversable_temp_dir("epochscope-writer-test-")
    built = start_stack(root)
    try:
        yield built
    finally:
        stop_stack(built)
        # Keep the writers' and the broker's logs for CI: test-artifacts/writer-logs/<root>/.
        logs = ARTIFACTS / "writer-logs" / root.name
        logs.mkdir(parents=True, exist_ok=True)
        for log in root.glob("*.log"):
            shutil.copy(log, logs)
        shutil.rmtree(root, ignore_errors=True)


@pytest_asyncio.fixture(loop_scope="module", name="producer")
async def producer_fixture(stack: Stack) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=stack.broker.bootstrap_servers, acks="all", linger_ms=5)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


@dataclass(frozen=True)
class Job:
    job_id: uuid.UUID
    owner: str
    token: str


async def create_job(stack: Stack, owner: str, token_ttl: timedelta = timedelta(hours=1)) -> Job:
    """Insert a job row as the admin (as the API would) and mint its token."""
    job_id = uuid.uuid4()
    token, claims = mint_job_token(JOB_TOKEN_SECRET, job_id, owner, token_ttl)
    conn = await asyncpg.connect(stack.admin_dsn)
    try:
        await conn.execute(
            "INSERT INTO jobs (job_id, owner_id, config, token_expires_at) VALUES ($1, $2, '{}'::jsonb, $3)",
            job_id,
            owner,
            claims.expires_at,
        )
    finally:
        await conn.close()
    return Job(job_id, owner, token)


def prediction(job: Job, step: int, sample: int, token: str | None = None, **fields: object) -> PredictionEvent:
    return PredictionEvent(
        job_id=job.job_id,
        job_token=job.token if token is None else token,
        round_index=step,
        epoch=float(step),
        step=step,
        sample_id=f"s{sample}",
        sample_index=sample,
        prompt=f"prompt {sample}",
        ground_truth="truth",
        prediction=f"answer {sample} at {step}",
        **fields,
    )


def scored_prediction(job: Job, step: int, sample: int) -> PredictionEvent:
    return prediction(
        job,
        step,
        sample,
        valid=False,
        validation_error="not valid JSON",
        scores=PredictionScores(exact_match=0.0, f1=0.5, rouge_l=0.25),
    )


def status(job: Job, value: JobStatus, occurred_at: datetime, token: str | None = None) -> JobStatusEvent:
    return JobStatusEvent(
        job_id=job.job_id, job_token=job.token if token is None else token, status=value, occurred_at=occurred_at
    )


def round_summary(job: Job, round_index: int, predictions: int = 4) -> RoundSummaryEvent:
    return RoundSummaryEvent(
        job_id=job.job_id,
        job_token=job.token,
        round_index=round_index,
        epoch=float(round_index),
        step=round_index * 10,
        trigger="epoch",
        predictions=predictions,
        validated=predictions,
        valid=predictions - 1,
        scored=predictions,
        mean_exact_match=0.25,
        mean_f1=0.5,
        mean_rouge_l=0.75,
        tokens_generated=100,
        wall_ms=1234.5,
        stall_ms=12.5,
    )


def progress(job: Job, step: int, loss: float | None = 1.0) -> ProgressEvent:
    return ProgressEvent(
        job_id=job.job_id,
        job_token=job.token,
        step=step,
        max_steps=100,
        epoch=step / 50,
        num_epochs=2,
        loss=loss,
        learning_rate=1e-4,
        samples_per_second=3.5,
    )


def warning(job: Job, code: str = "samples_missing") -> WarningEvent:
    return WarningEvent(job_id=job.job_id, job_token=job.token, code=code, message=f"{code}: see the job log")


async def publish(producer: AIOKafkaProducer, topic: str, job_id: uuid.UUID, value: bytes) -> None:
    await producer.send(topic, value=value, key=str(job_id).encode())


async def publish_events(producer: AIOKafkaProducer, events: list[Envelope]) -> None:
    for event in events:
        topic = TRAINING_PREDICTIONS if isinstance(event, PredictionEvent) else TRAINING_STATUS
        await publish(producer, topic, event.job_id, encode_event(event))
    await producer.flush()


async def admin_fetch(stack: Stack, query: str, *args: object) -> list[asyncpg.Record]:
    """Run one query as the admin (no RLS), on a connection of its own."""
    conn = await asyncpg.connect(stack.admin_dsn)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def count_rows(stack: Stack, job_id: uuid.UUID) -> tuple[int, int]:
    """(rows, distinct natural keys) for one job."""
    [row] = await admin_fetch(
        stack,
        "SELECT count(*) AS n, count(DISTINCT (step, sample_id)) AS d FROM training_predictions WHERE job_id = $1",
        job_id,
    )
    return row["n"], row["d"]


async def job_row(stack: Stack, job_id: uuid.UUID) -> asyncpg.Record:
    [row] = await admin_fetch(stack, "SELECT * FROM jobs WHERE job_id = $1", job_id)
    return row


async def wait_for(predicate: Callable[[], Awaitable[object]], timeout: float, interval: float = 0.2) -> None:
    """Await an async predicate until it returns truthy, or fail with its last value."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = await predicate()
        if last:
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value {last!r})")


async def read_dead_letters(stack: Stack, topic: str, at_least: int, timeout: float = 30) -> list[dict]:
    """Every record on `<topic>.dlq` so far, decoded, once at least `at_least` have arrived."""
    consumer = AIOKafkaConsumer(
        dead_letter_topic(topic),
        bootstrap_servers=stack.broker.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    records: list[dict] = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(json.loads(m.value) for m in messages)
            if len(records) >= at_least:
                await asyncio.sleep(0.5)  # let stragglers in, to catch too many
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(json.loads(m.value) for m in messages)
                break
    finally:
        await consumer.stop()
    return records


def original_payload(dead_letter: dict) -> bytes:
    return base64.b64decode(dead_letter["payload_base64"])


async def committed_offsets(stack: Stack, topic: str) -> dict[int, int]:
    """The writers group's committed offset per partition of `topic` (missing: nothing committed).

    Read with OffsetFetch from a consumer that never joins the group (Tansu's answer to the admin
    client's ListConsumerGroupOffsets does not decode in aiokafka).
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.broker.bootstrap_servers, group_id=WRITERS_GROUP)
    await consumer.start()
    try:
        offsets = {p: await consumer.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)}
    finally:
        await consumer.stop()
    return {p: offset for p, offset in offsets.items() if offset is not None}


async def end_offsets(stack: Stack, topic: str) -> dict[int, int]:
    """One past the last offset of each partition of `topic`.

    Tansu 0.6 answers ListOffsets(latest) with the last batch's base offset + 1, not the high watermark,
    so read that last batch and take its last record's offset + 1 (correct on Apache Kafka too).
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.broker.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        reported = await consumer.end_offsets(partitions)
        consumer.assign(partitions)
        ends: dict[int, int] = {}
        for tp in partitions:
            ends[tp.partition] = reported[tp]
            if reported[tp] > 0:
                consumer.seek(tp, reported[tp] - 1)
        while batch := await consumer.getmany(*partitions, timeout_ms=300):
            for tp, messages in batch.items():
                ends[tp.partition] = max(ends[tp.partition], messages[-1].offset + 1)
        return ends
    finally:
        await consumer.stop()


def now() -> datetime:
    return datetime.now(UTC)
