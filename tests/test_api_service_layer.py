"""The API's use cases (service_layer/) on fakes: a fake connection or pool, a fake upload body and scan, and the
data functions they call replaced where a use case's logic, not its SQL, is under test. The same use cases run on
the real stack in test_api_integration.py, test_datasets_api.py and test_scheduling*.py."""

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from start_keys import DISPATCH_PUBLIC_KEY, SIGNING_KEY, TRAINER_SEALING_KEY, TRAINER_SEALING_PUBLIC

from epochscope_api.datasets.scan import Scan
from epochscope_api.datasets.uploads import StoredUpload
from epochscope_api.errors import DomainError, EventTooLarge, JobNotFound, QuotaExceeded, UnusableUpload
from epochscope_api.response_models import DatasetReport, Job
from epochscope_api.service_layer import datasets, jobs, queue
from epochscope_api.service_layer.queue_places import replay_turns
from epochscope_api.settings import ApiSettings
from epochscope_runtime.command_signing import start_refusal, verify_command
from epochscope_runtime.dispatch_keys import load_public_keys
from epochscope_runtime.job_token import JobTokenClaims, job_token_for, verify_job_token
from epochscope_runtime.object_store import StoreSettings
from epochscope_runtime.token_sealing import binding, open_sealed
from epochscope_runtime.token_sealing import load_private_key as load_sealing_key
from epochscope_schemas.config import JobConfig
from epochscope_schemas.events import (
    DatasetObject,
    Envelope,
    JobCancelEvent,
    JobInputs,
    JobStartEvent,
    JobStatus,
    ModelSource,
    parse_event,
)
from epochscope_schemas.topics import JOB_COMMANDS

SECRET = "job-token-secret-for-the-service-layer-tests"
DATASET_ID = uuid.UUID("0d8f2a1e-3b7e-4a37-9a62-2f1a4d9d0c11")
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def settings(**overrides: Any) -> ApiSettings:
    return ApiSettings(
        environment="development",
        jwt_secret=SecretStr("unused"),
        job_token_secret=SecretStr(SECRET),
        store=StoreSettings(local_dir=Path()),
        **overrides,
    )


class FakeConnection:
    """Just enough of asyncpg.Connection: one job row (or none) for fetchrow, and what was executed."""

    def __init__(self, job: dict[str, Any] | None = None) -> None:
        self.job = job
        self.executed: list[tuple[str, tuple[Any, ...]]] = []

    async def fetchrow(self, query: str, *args: Any) -> dict[str, Any] | None:
        return self.job

    async def execute(self, query: str, *args: Any) -> str:
        self.executed.append((query, args))
        return ""

    async def fetchval(self, query: str, *args: Any) -> Any:
        self.executed.append((query, args))
        return None  # no row in the job queue

    def queued_events(self) -> list[tuple[str, str, Envelope]]:
        """(topic, key, event) of every row inserted into the outbox."""
        return [(a[0], a[1], parse_event(a[2])) for query, a in self.executed if query.startswith("INSERT INTO outbox")]

    def is_closed(self) -> bool:
        return False

    def is_in_transaction(self) -> bool:
        return any(query.startswith("BEGIN") for query, _ in self.executed)


class FakePool:
    def __init__(self) -> None:
        self.conn = FakeConnection()

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[FakeConnection]:
        yield self.conn


def job_row(status: JobStatus, attempt_id: uuid.UUID | None = None) -> dict[str, Any]:
    """A job row as fetch_job_attempt reads it (`attempt_id`: its queue row's current attempt)."""
    return {
        "job_id": uuid.uuid4(),
        "status": status.value,
        "status_message": None,
        "config": {"model": "tiny", "dataset_id": str(DATASET_ID)},
        "metrics": {},
        "progress": None,
        "created_at": NOW,
        "updated_at": NOW,
        "started_at": None,
        "finished_at": None,
        "token_expires_at": NOW + timedelta(hours=1),
        "attempt_id": attempt_id,
    }


# --- jobs: cancel ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", list(JobStatus))
async def test_a_cancel_is_queued_only_for_a_job_sent_to_a_trainer_and_not_ended(status: JobStatus) -> None:
    attempt = uuid.uuid4()
    conn = FakeConnection(job_row(status, attempt))
    job_id = conn.job["job_id"]
    job = await jobs.cancel_job(conn, job_id, "alice", settings())
    assert (job.job_id, job.status) == (job_id, status)
    queued = [(topic, key, event.type, event.job_id, event.user_id) for topic, key, event in conn.queued_events()]
    assert queued == ([] if status.is_final else [(JOB_COMMANDS, str(job_id), "job.cancel", job_id, "alice")])
    # Signed with the current attempt's token (minted again from the rows: the API keeps no token), no other.
    token = job_token_for(SECRET, JobTokenClaims(job_id, "alice", conn.job["token_expires_at"], attempt))
    job_wide = job_token_for(SECRET, JobTokenClaims(job_id, "alice", conn.job["token_expires_at"]))
    for _, _, cancel in conn.queued_events():
        assert isinstance(cancel, JobCancelEvent) and cancel.attempt_id is None  # the user's: the whole job
        assert verify_command(cancel, token) and not verify_command(cancel, job_wide)


async def test_a_job_waiting_for_its_first_or_next_attempt_is_withdrawn_with_no_cancel_on_the_bus() -> None:
    conn = FakeConnection(job_row(JobStatus.QUEUED, attempt_id=None))
    await jobs.cancel_job(conn, conn.job["job_id"], "alice", settings())
    assert conn.queued_events() == []
    (withdraw,) = [args for query, args in conn.executed if query.startswith("UPDATE job_queue SET state = 'final'")]
    assert withdraw[0] == conn.job["job_id"] and withdraw[1] == "cancelled"


async def test_a_cancel_of_no_job_is_job_not_found_and_queues_nothing() -> None:
    conn = FakeConnection(None)
    with pytest.raises(JobNotFound):
        await jobs.cancel_job(conn, uuid.uuid4(), "alice", settings())
    assert conn.executed == []


# --- jobs: submit ---------------------------------------------------------------------------------------------------


@pytest.fixture
def submit_adapters(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The data functions submit_job calls, replaced; returns the order they were called in."""
    calls: list[str] = []
    train = DatasetObject(
        dataset_id=DATASET_ID, key="datasets/alice/x.jsonl", file_type="jsonl", row_format="text", sha256="0" * 64,
        bytes=10,
    )  # fmt: skip

    async def resolve_inputs(conn: Any, config: JobConfig, model: Any) -> JobInputs:
        calls.append("resolve_inputs")
        return JobInputs(model=ModelSource(id=model.id, source=model.source), train=train)

    async def record(name: str, *args: Any) -> None:
        calls.append(name)

    async def job_with_place(conn: FakeConnection, job_id: uuid.UUID, lease_s: float) -> Job:
        calls.append("job_with_place")
        return Job(**(job_row(JobStatus.QUEUED) | {"job_id": job_id}))

    monkeypatch.setattr(jobs, "resolve_inputs", resolve_inputs)
    monkeypatch.setattr(jobs, "check_active_jobs", lambda *a: record("check_active_jobs"))
    monkeypatch.setattr(jobs, "link_job_datasets", lambda *a: record("link_job_datasets"))
    monkeypatch.setattr(jobs, "job_with_place", job_with_place)
    return calls


async def test_a_submitted_job_is_queued_with_no_token_and_its_tokens_expiry_from_the_clock(
    submit_adapters: list[str],
) -> None:
    conn = FakeConnection()
    config = JobConfig(model=settings().models[0].id, dataset_id=DATASET_ID)
    job = await jobs.submit_job(conn, "alice", config, settings(job_token_ttl_hours=5), clock=lambda: NOW)
    assert submit_adapters == ["resolve_inputs", "check_active_jobs", "link_job_datasets", "job_with_place"]
    (insert_job, args_job), (insert_queue, args_queue), (insert_start, args_start) = conn.executed[:3]
    assert insert_job.startswith("INSERT INTO jobs") and insert_queue.startswith("INSERT INTO job_queue")
    assert insert_start.startswith("INSERT INTO job_start_payloads")  # under row-level security, as its owner
    assert args_job[0] == job.job_id == args_queue[0] == args_start[0] and args_job[1] == "alice" == args_start[1]
    assert args_job[3] == args_queue[2] == NOW + timedelta(hours=5)
    start = parse_event(args_start[2])
    assert isinstance(start, JobStartEvent) and start.job_token is None  # the dispatcher mints one per attempt
    assert conn.queued_events() == []  # nothing goes to the bus at submission


async def test_a_start_too_large_for_the_bus_once_dispatched_is_refused_before_the_queue(
    submit_adapters: list[str],
) -> None:
    conn = FakeConnection()
    config = JobConfig(model=settings().models[0].id, dataset_id=DATASET_ID)
    stored = len(JobStartEvent(job_id=uuid.uuid4(), user_id="alice", config=config, inputs=JobInputs(
        model=ModelSource(id=settings().models[0].id, source=settings().models[0].source),
        train=DatasetObject(
            dataset_id=DATASET_ID, key="datasets/alice/x.jsonl", file_type="jsonl", row_format="text",
            sha256="0" * 64, bytes=10,
        ),
    )).model_dump_json())  # fmt: skip
    too_small = settings()
    too_small.kafka.max_message_bytes = stored + queue.DISPATCH_ROOM - 1  # fits now, not with a token and address
    with pytest.raises(EventTooLarge):
        await jobs.submit_job(conn, "alice", config, too_small, clock=lambda: NOW)
    assert not any(query.startswith("INSERT INTO job_queue") for query, _ in conn.executed)


# --- queue: a dispatch mints the attempt's token, seals it for the trainer and signs the start -----------------------


async def test_a_dispatch_mints_the_attempts_token_sealed_for_its_trainer_and_signs_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job_id, expires_at = uuid.uuid4(), NOW + timedelta(hours=2)
    start = JobStartEvent(
        job_id=job_id,
        user_id="alice",
        config=JobConfig(model="tiny", dataset_id=DATASET_ID),
        inputs=JobInputs(
            model=ModelSource(id="tiny", source="bundled:tiny"),
            train=DatasetObject(
                dataset_id=DATASET_ID, key="k", file_type="jsonl", row_format="text", sha256="0" * 64, bytes=1
            ),
        ),
    )

    async def mark_dispatched(conn: Any, job: uuid.UUID, owner: str, attempt_id: uuid.UUID, trainer: str) -> Any:
        return queue.sql.DispatchedRow(attempt_no=1, start_payload=start.model_dump_json(), token_expires_at=expires_at)

    async def insert_attempt(*args: Any) -> None:
        pass

    monkeypatch.setattr(queue.sql, "mark_dispatched", mark_dispatched)
    monkeypatch.setattr(queue.sql, "insert_attempt", insert_attempt)
    conn = FakeConnection()
    trainer = queue.sql.FreeTrainer("trainer-7", 1, TRAINER_SEALING_PUBLIC)
    assert await queue._dispatch(conn, job_id, "alice", trainer, SECRET, 1 << 20, SIGNING_KEY) == 1
    ((topic, key, sent),) = conn.queued_events()
    assert (topic, key) == (JOB_COMMANDS, str(job_id))
    assert isinstance(sent, JobStartEvent) and sent.trainer_id == "trainer-7" and sent.attempt_no == 1
    assert sent.job_token is None and sent.sealed_job_token  # never in the clear on the topic
    assert start_refusal(json.loads(sent.model_dump_json()), load_public_keys(DISPATCH_PUBLIC_KEY)) is None
    assert len(sent.model_dump_json()) - len(start.model_dump_json()) <= queue.DISPATCH_ROOM
    bound = binding(job_id, sent.attempt_id, "trainer-7")
    token = open_sealed(sent.sealed_job_token, load_sealing_key(TRAINER_SEALING_KEY), bound)
    claims = verify_job_token(SECRET, token, job_id)
    assert (claims.user_id, claims.expires_at, claims.attempt_id) == ("alice", expires_at, sent.attempt_id)


def test_the_queue_replays_users_in_turn_never_served_first() -> None:
    a1, a2, a3, b1, c1 = (uuid.uuid4() for _ in range(5))
    queued = [(a1, "ann"), (a2, "ann"), (b1, "ben"), (a3, "ann"), (c1, "cat")]
    assert replay_turns(queued, {"ben": 100.0, "cat": 50.0}) == [a1, c1, b1, a2, a3]


# --- datasets: upload -----------------------------------------------------------------------------------------------


class FakeBody:
    def __init__(self) -> None:
        self.limits: list[int] = []
        self.discarded = False

    async def store(self, dataset_id: uuid.UUID, limit: int, too_large: Callable[[], DomainError] | None) -> Any:
        self.limits.append(limit)
        return StoredUpload(
            filename="x.jsonl", file_type="jsonl", object_key=f"datasets/alice/{dataset_id}.jsonl", bytes=10,
            sha256="0" * 64,
        )  # fmt: skip

    async def discard(self) -> None:
        self.discarded = True


@pytest.fixture
def deleted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    keys: list[tuple[str, ...]] = []

    async def delete_quietly(store: Any, *names: str) -> None:
        keys.append(names)

    monkeypatch.setattr(datasets, "delete_quietly", delete_quietly)
    return keys


async def test_an_upload_past_the_dataset_count_quota_is_discarded_unread(
    monkeypatch: pytest.MonkeyPatch, deleted: list[tuple[str, ...]]
) -> None:
    async def no_room(*args: Any) -> int:
        raise QuotaExceeded.datasets(1, 60)

    monkeypatch.setattr(datasets, "dataset_bytes_left", no_room)
    body = FakeBody()
    with pytest.raises(QuotaExceeded):
        await datasets.upload_dataset(FakePool(), None, "alice", body, _scan_refusing, settings())
    assert body.discarded and body.limits == [] and deleted == []


async def test_an_upload_the_scan_refuses_leaves_no_object(
    monkeypatch: pytest.MonkeyPatch, deleted: list[tuple[str, ...]]
) -> None:
    async def room(*args: Any) -> int:
        return 1 << 40

    monkeypatch.setattr(datasets, "dataset_bytes_left", room)
    body = FakeBody()
    with pytest.raises(UnusableUpload):
        await datasets.upload_dataset(FakePool(), None, "alice", body, _scan_refusing, settings(upload_max_bytes=99))
    assert body.limits == [99]  # the size limit binds, not the quota
    ((key, index),) = deleted
    assert key.startswith("datasets/alice/") and index.startswith(key)


async def test_the_quota_left_bounds_an_upload_below_the_size_limit(
    monkeypatch: pytest.MonkeyPatch, deleted: list[tuple[str, ...]]
) -> None:
    async def room(*args: Any) -> int:
        return 7

    async def no_more_room(*args: Any) -> None:
        raise QuotaExceeded.dataset_bytes(100, 60)  # another upload took it meanwhile

    monkeypatch.setattr(datasets, "dataset_bytes_left", room)
    monkeypatch.setattr(datasets, "check_dataset_room", no_more_room)
    body = FakeBody()
    with pytest.raises(QuotaExceeded):
        await datasets.upload_dataset(FakePool(), None, "alice", body, _scan_accepting, settings())
    assert body.limits == [7] and len(deleted) == 1


async def _scan_refusing(key: str, file_type: str) -> Scan:
    raise UnusableUpload("no usable rows")


async def _scan_accepting(key: str, file_type: str) -> Scan:
    return Scan(rows=1, usable_rows=1, row_format="text", report=DatasetReport.model_construct())
