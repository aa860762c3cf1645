"""A real Postgres cluster for the job queue's database tests (no broker): started, migrated, and rows to seed it."""

import json
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from start_keys import TRAINER_SEALING_PUBLIC
from test_trainer_supervision import start_event

from epochscope.postgres import PostgresCluster
from epochscope_db.migrate import MigrateSettings
from epochscope_schemas.events import JobStartEvent

API_PASSWORD, WRITER_PASSWORD = "epochscope_api", "epochscope_writer"  # the development defaults


@contextmanager
def started_cluster() -> Iterator[PostgresCluster]:
    root = Path(tempfile.mkdtemp(prefix="epochscope-queue-db-"))
    postgres = PostgresCluster.for_stack(root)
    postgres.start()
    try:
        yield postgres
    finally:
        postgres.delete()
        shutil.rmtree(root, ignore_errors=True)


def migrate_settings(postgres: PostgresCluster) -> MigrateSettings:
    return MigrateSettings(
        admin_database_url=postgres.admin_url,
        environment="development",
        api_db_password=API_PASSWORD,
        writer_db_password=WRITER_PASSWORD,
    )


def start_of(job_id: uuid.UUID, owner: str) -> JobStartEvent:
    return start_event("exit:0", job_id).model_copy(update={"user_id": owner, "job_token": None})


async def add_job(admin: asyncpg.Connection, owner: str, status: str = "queued") -> uuid.UUID:
    """A job row as the API inserts it (the admin role bypasses row-level security)."""
    job_id = uuid.uuid4()
    await admin.execute(
        "INSERT INTO jobs (job_id, owner_id, config, token_expires_at, status) VALUES ($1, $2, $3, $4, $5)",
        job_id,
        owner,
        json.dumps(start_of(job_id, owner).config.model_dump(mode="json")),
        datetime.now(UTC) + timedelta(hours=1),
        status,
    )
    return job_id


async def add_queued_job(admin: asyncpg.Connection, owner: str, start_payload: str | None = None) -> uuid.UUID:
    """A job and its queue row, as `queue_job` leaves them (`start_payload`: its stored start; a good one unless
    given)."""
    job_id = await add_job(admin, owner)
    await admin.execute(
        "INSERT INTO job_queue (job_id, owner_id, token_expires_at)"
        " SELECT job_id, owner_id, token_expires_at FROM jobs WHERE job_id = $1",
        job_id,
    )
    await admin.execute(
        "INSERT INTO job_start_payloads (job_id, owner_id, payload) VALUES ($1, $2, $3)",
        job_id,
        owner,
        start_payload or start_of(job_id, owner).model_dump_json(),
    )
    return job_id


async def heartbeat(
    admin: asyncpg.Connection,
    trainer_id: str,
    free: int = 1,
    attempt_id: uuid.UUID | None = None,
    slots: int = 1,
    sealing_key: str | None = TRAINER_SEALING_PUBLIC,
) -> None:
    """The trainers row a verified heartbeat leaves (written as the writer would, now); its sealing key the tests'
    trainer key unless given (None: a trainer that published none)."""
    await admin.execute(
        "INSERT INTO trainers (trainer_id, device, slots, free_slots, attempt_id, last_heartbeat_at, sealing_key)"
        " VALUES ($1, 'cpu', $4, $2, $3, now(), $5) ON CONFLICT (trainer_id) DO UPDATE SET free_slots = $2,"
        " attempt_id = $3, slots = $4, last_heartbeat_at = now(), sealing_key = $5",
        trainer_id,
        free,
        attempt_id,
        slots,
        sealing_key,
    )
