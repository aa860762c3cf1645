"""Fixtures and helpers for the writer's real-stack tests (no tests of its own).

The local stack's own Postgres, broker and service processes, nothing mocked. Postgres can be stopped and
started (an outage); writers run as `epochscope-writer` subprocesses, so they can be killed with SIGKILL.
Fixtures are module-scoped: each test file gets a fresh database and broker. Events to publish and the
Kafka-side checks are in tests/writer_events.py.
"""

import asyncio
import json
import shutil
import tempfile
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
from aiokafka import AIOKafkaProducer
from conftest import ARTIFACTS

from epochscope.broker import TansuBroker, ensure_topics
from epochscope.ports import free_port
from epochscope.postgres import PostgresCluster
from epochscope.processes import ServiceProcess
from epochscope_db.migrate import MigrateSettings, migrate
from epochscope_runtime.dispatch_keys import new_key_pair
from epochscope_runtime.job_token import mint_job_token

JOB_TOKEN_SECRET = "writer-tests-job-token-secret-0123456789"
# Two trainers' identity keys (private, public), both accepted by the writers: each may speak only for itself.
TRAINER_IDENTITIES = (new_key_pair(), new_key_pair())
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

    def log_problems(self) -> list[str]:
        """Lines of its whole log (every start of it) at ERROR or worse, or with a traceback."""
        try:
            text = self.service.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return []
        markers = ('"level": "ERROR"', '"level": "CRITICAL"', "Traceback", '"exc_info"')
        return [line for line in text.splitlines() if any(marker in line for marker in markers)]


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
            "EPOCHSCOPE_ACCEPTED_TRAINER_KEYS": ",".join(public for _, public in TRAINER_IDENTITIES),
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
    postgres = PostgresCluster.for_stack(root)
    broker = TansuBroker(root / "broker.log")
    broker.start()
    postgres.start()
    stack = Stack(postgres, broker, root)
    asyncio.run(_prepare(stack))
    return stack


async def _prepare(stack: Stack) -> None:
    await migrate(
        MigrateSettings(
            admin_database_url=stack.admin_dsn, writer_db_password=WRITER_DB_PASSWORD, environment="development"
        )
    )
    await ensure_topics(stack.broker.bootstrap_servers, PARTITIONS)


def stop_stack(stack: Stack) -> None:
    for writer in stack.writers:
        writer.terminate()
    stack.broker.stop()
    stack.postgres.delete()


# Fast failover: a killed replica's partitions move on after 2 s, not after the 10 s default.
FAST_GROUP = {"EPOCHSCOPE_WRITER_SESSION_TIMEOUT_MS": "2000", "EPOCHSCOPE_WRITER_HEARTBEAT_INTERVAL_MS": "300"}


@pytest.fixture(scope="module", name="stack")
def stack_fixture() -> Iterator[Stack]:
    root = Path(tempfile.mkdtemp(prefix="epochscope-writer-test-"))
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


@pytest.fixture(name="writers")
def writers_fixture(stack: Stack) -> Iterator[list[WriterProcess]]:
    """The writers a test starts; all stopped at its end, so the next test's group starts clean."""
    started: list[WriterProcess] = []
    yield started
    for writer in started:
        writer.terminate()


@dataclass(frozen=True)
class Job:
    job_id: uuid.UUID
    owner: str
    token: str


async def create_job(
    stack: Stack, owner: str, token_ttl: timedelta = timedelta(hours=1), job_id: uuid.UUID | None = None
) -> Job:
    """Insert a job row as the admin (as the API would) and mint its token."""
    job_id = job_id or uuid.uuid4()
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


async def stored_predictions(stack: Stack, job_ids: list[uuid.UUID]) -> dict[tuple[str, int, str], tuple[str, ...]]:
    """Each stored prediction's (event_id, prediction, row version) by natural key. The version is Postgres's
    `xmin`: a row rewritten in place (an upsert of a redelivery) gets a new one, a row left alone keeps it."""
    rows = await admin_fetch(
        stack,
        "SELECT job_id::text, step, sample_id, event_id::text, prediction, xmin::text AS version"
        " FROM training_predictions WHERE job_id = ANY($1::uuid[])",
        job_ids,
    )
    return {(r["job_id"], r["step"], r["sample_id"]): (r["event_id"], r["prediction"], r["version"]) for r in rows}


def sent_predictions(payloads: list[tuple[uuid.UUID, bytes]]) -> dict[tuple[str, int, str], tuple[str, str]]:
    """The (event_id, prediction) each published prediction event carries, by natural key."""
    events = [json.loads(value) for _, value in payloads]
    return {(e["job_id"], e["step"], e["sample_id"]): (e["event_id"], e["prediction"]) for e in events}


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


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture(scope="module", name="writer", autouse=True)
def writer_fixture(stack: Stack) -> Iterator[WriterProcess]:
    """One writer for the tests of a module that imports this fixture, stopped cleanly (exit status 0) at its end."""
    process = stack.start_writer()
    yield process
    assert process.terminate() == 0, process.log_text()
