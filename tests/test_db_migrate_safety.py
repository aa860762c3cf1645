"""The migrator on a live database (issue 23, item 9): it gives up on a lock instead of queueing every query behind
it (lock_timeout), builds indexes CONCURRENTLY in a no-transaction migration, and never sends a role's password to
a server that logs DDL (a SCRAM verifier computed client-side)."""

import asyncio
import secrets
import time
from collections.abc import Iterator

import asyncpg
import pytest
from pydantic import SecretStr
from queue_postgres import migrate_settings, started_cluster

from epochscope.postgres import PostgresCluster
from epochscope_db.migrate import NO_TRANSACTION, Migration, apply_migration, migrate
from epochscope_db.scram import scram_sha_256_verifier

CONCURRENT = Migration(
    "9001_concurrent_index",
    f"{NO_TRANSACTION}\n-- build on a live table\n"
    "DROP INDEX CONCURRENTLY IF EXISTS jobs_status_safety;\n"
    "CREATE INDEX CONCURRENTLY jobs_status_safety\n  ON jobs (status);\n",
)


def test_a_no_transaction_migration_is_split_into_its_statements() -> None:
    assert not CONCURRENT.in_transaction and Migration("0001_a", "CREATE TABLE a ();").in_transaction
    assert CONCURRENT.statements() == [
        f"{NO_TRANSACTION}\n-- build on a live table\nDROP INDEX CONCURRENTLY IF EXISTS jobs_status_safety",
        "CREATE INDEX CONCURRENTLY jobs_status_safety\n  ON jobs (status)",
    ]


def test_a_verifier_has_postgres_format_and_never_the_password() -> None:
    verifier = scram_sha_256_verifier("hunter2-password", salt=b"0123456789abcdef")
    assert verifier.startswith("SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$") and "hunter2" not in verifier
    assert scram_sha_256_verifier("same") != scram_sha_256_verifier("same")  # a random salt each time
    with pytest.raises(ValueError, match="ASCII"):
        scram_sha_256_verifier("pässword")


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresCluster]:
    with started_cluster() as cluster:
        asyncio.run(migrate(migrate_settings(cluster)))
        yield cluster


@pytest.mark.stack
def test_migrate_gives_up_on_a_lock_held_by_a_long_transaction(postgres: PostgresCluster) -> None:
    async def run() -> float:
        holder = await asyncpg.connect(postgres.admin_url)
        try:
            async with holder.transaction():
                await holder.execute("LOCK TABLE schema_migrations IN ACCESS EXCLUSIVE MODE")
                settings = migrate_settings(postgres).model_copy(update={"migration_lock_timeout_s": 0.5})
                started = time.monotonic()
                with pytest.raises(asyncpg.LockNotAvailableError):
                    await asyncio.wait_for(migrate(settings), 30)  # without lock_timeout: waits for the holder
                return time.monotonic() - started
        finally:
            await holder.close()

    assert asyncio.run(run()) < 10


@pytest.mark.stack
def test_a_no_transaction_migration_builds_its_index_concurrently(postgres: PostgresCluster) -> None:
    async def run() -> None:
        admin = await asyncpg.connect(postgres.admin_url)
        try:
            await apply_migration(admin, CONCURRENT)  # CREATE INDEX CONCURRENTLY fails inside a transaction
            await apply_migration(admin, CONCURRENT)  # and may run again from the top
            valid = "SELECT indisvalid FROM pg_index WHERE indexrelid = 'jobs_status_safety'::regclass"
            assert await admin.fetchval(valid) is True
            recorded = "SELECT checksum FROM schema_migrations WHERE version = $1"
            assert await admin.fetchval(recorded, CONCURRENT.version) == CONCURRENT.checksum
        finally:
            await admin.execute("DROP INDEX IF EXISTS jobs_status_safety")
            await admin.execute("DELETE FROM schema_migrations WHERE version = $1", CONCURRENT.version)
            await admin.close()

    asyncio.run(run())


@pytest.mark.stack
def test_role_passwords_never_reach_a_server_that_logs_ddl(postgres: PostgresCluster) -> None:
    password = secrets.token_urlsafe(24)
    settings = migrate_settings(postgres).model_copy(update={"api_db_password": SecretStr(password)})

    async def run() -> None:
        admin = await asyncpg.connect(postgres.admin_url)
        try:
            await admin.execute("ALTER SYSTEM SET log_statement = 'ddl'")
            await admin.execute("SELECT pg_reload_conf()")
            await migrate(settings)
            stored = await admin.fetchval("SELECT rolpassword FROM pg_authid WHERE rolname = 'epochscope_api'")
            assert stored.startswith("SCRAM-SHA-256$4096:")
        finally:
            await admin.execute("ALTER SYSTEM RESET log_statement")
            await admin.execute("SELECT pg_reload_conf()")
            await admin.close()
        api = await asyncpg.connect(postgres.url_for("epochscope_api", password))  # the password still logs in
        await api.close()

    asyncio.run(run())
    log = postgres.log.read_text(errors="replace")
    assert "ALTER ROLE epochscope_api" in log  # the DDL was logged ...
    assert password not in log  # ... without the password
