"""The migrator (epochscope_db): each migration applied once, its checksum kept, an edited one refused; jobs queued
before the job queue (0014) get their queue row from 0015 and are dispatched."""

import asyncio
import json
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from queue_postgres import API_PASSWORD, add_job, heartbeat, migrate_settings, start_of, started_cluster

from epochscope.postgres import PostgresCluster
from epochscope_api.service_layer.queue import DispatchSettings, dispatch_once
from epochscope_db.migrate import (
    MigrateSettings,
    Migration,
    MigrationChanged,
    changed_migrations,
    migrate,
    migration_files,
)
from epochscope_schemas.events import JobStartEvent, parse_event

SHIPPED = [Migration("0001_a", "CREATE TABLE a ();"), Migration("0002_b", "CREATE TABLE b ();")]


def test_shipped_migrations_are_found_in_order() -> None:
    versions = [m.version for m in migration_files()]
    assert versions[0] == "0001_init" and versions == sorted(versions)


def test_an_applied_migration_edited_since_is_reported() -> None:
    applied = {"0001_a": Migration("0001_a", "CREATE TABLE a (x int);").checksum, "0002_b": SHIPPED[1].checksum}
    assert changed_migrations(applied, SHIPPED) == ["0001_a"]


def test_pending_migrations_and_those_applied_before_checksums_are_not_changes() -> None:
    assert changed_migrations({"0001_a": None}, SHIPPED) == []


@pytest.fixture(scope="module")
def admin_url() -> Iterator[str]:
    root = Path(tempfile.mkdtemp(prefix="epochscope-migrate-test-"))
    postgres = PostgresCluster.for_stack(root)
    postgres.start()
    try:
        yield postgres.admin_url
    finally:
        postgres.delete()
        shutil.rmtree(root, ignore_errors=True)


def sql(url: str, statement: str) -> object:
    async def run() -> object:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetchval(statement)
        finally:
            await conn.close()

    return asyncio.run(run())


@pytest.mark.stack
def test_migrate_applies_once_and_refuses_an_edited_migration(admin_url: str) -> None:
    settings = MigrateSettings(admin_database_url=admin_url, environment="development")
    shipped = [m.version for m in migration_files()]
    assert asyncio.run(migrate(settings)) == shipped
    assert asyncio.run(migrate(settings)) == []
    # A database migrated before checksums were kept gets them on the next run.
    sql(admin_url, "UPDATE schema_migrations SET checksum = NULL")
    assert asyncio.run(migrate(settings)) == []
    assert sql(admin_url, "SELECT count(*) FROM schema_migrations WHERE checksum IS NULL") == 0
    sql(admin_url, "UPDATE schema_migrations SET checksum = 'edited' WHERE version = '0001_init'")
    with pytest.raises(MigrationChanged, match="0001_init"):
        asyncio.run(migrate(settings))


async def queued_before_the_job_queue(admin: asyncpg.Connection) -> dict[str, uuid.UUID]:
    """A database as 0014 found it: queued jobs with no queue row, their job.start v2 in the outbox (one published
    without its token, one not published yet, one deleted past its retention), and a running job."""
    jobs = {name: await add_job(admin, "ann") for name in ("published", "pending", "gone")}
    jobs["running"] = await add_job(admin, "ann", status="running")
    for name, published in (("published", True), ("pending", False), ("running", True)):
        start = start_of(jobs[name], "ann").model_dump(mode="json", exclude={"trainer_id", "attempt_id", "attempt_no"})
        start |= {"schema_version": 2} if published else {"schema_version": 2, "job_token": "the-job-token"}
        await admin.execute(
            "INSERT INTO outbox (topic, key, payload, published_at) VALUES ('jobs.commands', $1, $2, $3)",
            str(jobs[name]),
            json.dumps(start),
            datetime.now(UTC) if published else None,
        )
    return jobs


AGAIN = ["0015_job_queue_backfill", "0043_start_payloads_under_rls"]


async def backfill_and_dispatch(postgres: PostgresCluster) -> None:
    admin = await asyncpg.connect(postgres.admin_url)
    try:
        jobs = await queued_before_the_job_queue(admin)
        # 0015 as it ran: into job_queue.start_payload, which 0043 then moved under row-level security
        await admin.execute("ALTER TABLE job_queue ADD COLUMN start_payload text")
        await admin.execute("DELETE FROM schema_migrations WHERE version = ANY($1::text[])", AGAIN)
        assert await migrate(migrate_settings(postgres)) == AGAIN
        rows = {r["job_id"]: r for r in await admin.fetch("SELECT * FROM job_queue")}
        assert set(rows) == {jobs["published"], jobs["pending"]} and {r["state"] for r in rows.values()} == {"queued"}
        starts = dict(await admin.fetch("SELECT job_id, payload FROM job_start_payloads"))
        assert set(starts) == set(rows)
        for job_id, payload in starts.items():
            start = parse_event(payload)
            assert isinstance(start, JobStartEvent) and start.job_id == job_id and start.job_token is None
        pending = await admin.fetchrow("SELECT * FROM outbox WHERE key = $1", str(jobs["pending"]))
        assert pending["published_at"] is not None and "superseded" in pending["set_aside_reason"]
        assert "job_token" not in json.loads(pending["payload"])
        gone = await admin.fetchrow("SELECT status, status_message FROM jobs WHERE job_id = $1", jobs["gone"])
        assert gone["status"] == "failed" and "submit it again" in gone["status_message"]
        await heartbeat(admin, "t1", free=2, slots=2)
        api = await asyncpg.connect(postgres.url_for("epochscope_api", API_PASSWORD))
        try:
            assert (
                await dispatch_once(api, DispatchSettings(), "backfill-tests-job-token-secret-0123456789", 1 << 20) == 2
            )
        finally:
            await api.close()
        sent = [
            parse_event(r["payload"])
            for r in await admin.fetch("SELECT payload FROM outbox WHERE published_at IS NULL")
        ]
        assert {(e.job_id, e.trainer_id, e.attempt_no) for e in sent} == {
            (jobs["published"], "t1", 1),
            (jobs["pending"], "t1", 1),
        }
        assert all(isinstance(e, JobStartEvent) and e.sealed_job_token and e.job_token is None for e in sent)
    finally:
        await admin.close()


@pytest.mark.stack
def test_jobs_queued_before_the_job_queue_are_backfilled_and_dispatched() -> None:
    with started_cluster() as postgres:
        asyncio.run(migrate(migrate_settings(postgres)))
        asyncio.run(backfill_and_dispatch(postgres))
