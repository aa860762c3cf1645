"""The migrator (epochscope_db): each migration applied once, its checksum kept, an edited one refused."""

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from epochscope.postgres import PostgresCluster
from epochscope_db.migrate import (
    MigrateSettings,
    Migration,
    MigrationChanged,
    changed_migrations,
    migrate,
    migration_files,
)

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
