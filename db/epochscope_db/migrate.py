"""Apply the versioned SQL migrations, once each, and create the service roles.

Idempotent: run at every stack start. Runs as an administrative role (EPOCHSCOPE_ADMIN_DATABASE_URL);
the API and writer roles it creates are LOGIN, NOSUPERUSER, NOBYPASSRLS. Each applied migration's
SHA-256 is recorded; a shipped file that no longer matches what was applied stops the migrator before
it changes anything, since editing an applied migration changes nothing in a database that ran it.

Each migration runs in its own transaction, recorded in the same one, under `lock_timeout`
(EPOCHSCOPE_MIGRATION_LOCK_TIMEOUT_S): a migration that would queue behind a long transaction's lock (and make every
query behind it wait too) fails instead, changing nothing, to be run again. A file whose first line is
`-- epochscope: no-transaction` runs outside a transaction, one statement (ending in `;` at the end of a line) at a
time, so it can build indexes on live tables with CREATE INDEX CONCURRENTLY; it must be safe to run again from the
top (`DROP INDEX CONCURRENTLY IF EXISTS` first: a failed concurrent build leaves an invalid index), since it is
recorded only after its last statement. Role passwords are sent as SCRAM-SHA-256 verifiers computed here, so a
server logging DDL (`log_statement = ddl`) never logs a password.
"""

import asyncio
import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from epochscope_db.scram import scram_sha_256_verifier
from epochscope_runtime.secret_policy import Environment, refuse_weak_secrets

log = logging.getLogger("epochscope.migrate")

SERVICE_ROLES = ("epochscope_api", "epochscope_writer")
LOCK_KEY = 7_318_291  # pg_advisory_lock key: one migrator at a time
NO_TRANSACTION = "-- epochscope: no-transaction"  # first line of a migration that runs statement by statement
STATEMENT_END = re.compile(r";[ \t]*$", re.MULTILINE)


class MigrateSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EPOCHSCOPE_")

    environment: Environment = Field(
        default=Environment.PRODUCTION, description="production refuses default or weak role passwords."
    )
    admin_database_url: str = "postgresql://postgres@127.0.0.1:5432/epochscope"
    api_db_password: SecretStr = SecretStr("epochscope_api")
    writer_db_password: SecretStr = SecretStr("epochscope_writer")
    migration_lock_timeout_s: float = Field(
        default=10, gt=0, le=600, description="How long a migration's statement waits for a table lock before failing."
    )

    @model_validator(mode="after")
    def _no_default_passwords(self) -> "MigrateSettings":
        refuse_weak_secrets(
            self.environment,
            {
                "EPOCHSCOPE_API_DB_PASSWORD": self.api_db_password.get_secret_value(),
                "EPOCHSCOPE_WRITER_DB_PASSWORD": self.writer_db_password.get_secret_value(),
            },
        )
        return self


class MigrationChanged(RuntimeError):
    """An applied migration's file was edited: write a new migration instead."""


@dataclass(frozen=True)
class Migration:
    version: str  # the file name without .sql; applied in this order
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def in_transaction(self) -> bool:
        return not self.sql.startswith(NO_TRANSACTION)

    def statements(self) -> list[str]:
        """The SQL split at each `;` that ends a line, for a migration run statement by statement."""
        return [part.strip() for part in STATEMENT_END.split(self.sql) if _has_sql(part)]


def _has_sql(text: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in text.splitlines())


def migration_files() -> list[Migration]:
    """Every migration shipped with the package, in order."""
    folder = resources.files("epochscope_db").joinpath("migrations")
    names = sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".sql"))
    return [Migration(name.removesuffix(".sql"), folder.joinpath(name).read_text()) for name in names]


def changed_migrations(applied: dict[str, str | None], shipped: list[Migration]) -> list[str]:
    """Versions applied with a checksum that the shipped file no longer has (None: applied before checksums)."""
    return [m.version for m in shipped if applied.get(m.version) not in (None, m.checksum)]


async def ensure_role(conn: asyncpg.Connection, role: str, password: str) -> None:
    exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
    verb = "ALTER" if exists else "CREATE"
    # Role names are constants above; the verifier (never the password) is passed as a literal via format('%L').
    statement = await conn.fetchval(
        "SELECT format('%s ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB PASSWORD %L',"
        " $1::text, $2::text, $3::text)",
        verb,
        role,
        scram_sha_256_verifier(password),
    )
    await conn.execute(statement)


async def _ensure_roles(conn: asyncpg.Connection, settings: MigrateSettings) -> None:
    passwords = {
        "epochscope_api": settings.api_db_password.get_secret_value(),
        "epochscope_writer": settings.writer_db_password.get_secret_value(),
    }
    for role in SERVICE_ROLES:
        await ensure_role(conn, role, passwords[role])
    database = await conn.fetchval("SELECT current_database()")
    await conn.execute(f'GRANT CONNECT ON DATABASE "{database}" TO {", ".join(SERVICE_ROLES)}')
    await conn.execute(f"GRANT USAGE ON SCHEMA public TO {', '.join(SERVICE_ROLES)}")


async def ensure_service_roles(settings: MigrateSettings) -> None:
    """Only the roles (and their CONNECT and USAGE grants): what a restored dump needs before it is loaded."""
    conn = await asyncpg.connect(settings.admin_database_url)
    try:
        async with conn.transaction():
            await _ensure_roles(conn, settings)
    finally:
        await conn.close()


async def _applied(conn: asyncpg.Connection) -> dict[str, str | None]:
    """version -> checksum of every applied migration; adds the checksum column to a pre-checksum table."""
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    await conn.execute("ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum text")
    rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
    return {row["version"]: row["checksum"] for row in rows}


async def migrate(settings: MigrateSettings) -> list[str]:
    """Apply pending migrations; return the versions applied now. Raises MigrationChanged, changing nothing, and
    asyncpg's LockNotAvailableError when a migration waited `migration_lock_timeout_s` for a lock."""
    conn = await asyncpg.connect(settings.admin_database_url)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)  # released when the session ends
        await conn.execute(f"SET lock_timeout = {int(settings.migration_lock_timeout_s * 1000)}")
        shipped = migration_files()
        async with conn.transaction():
            await _ensure_roles(conn, settings)
            applied = await _applied(conn)
            changed = changed_migrations(applied, shipped)
            if changed:  # rolls back the roles too: nothing changes
                raise MigrationChanged(f"applied migrations edited since: {', '.join(changed)}")
        new = []
        for migration in shipped:
            if migration.version not in applied:
                log.info("applying migration %s", migration.version)
                await apply_migration(conn, migration)
                new.append(migration.version)
            elif applied[migration.version] is None:  # applied before checksums were kept: record what is shipped
                await _record(conn, migration)
        return new
    finally:
        await conn.close()


async def apply_migration(conn: asyncpg.Connection, migration: Migration) -> None:
    """Run one migration and record it: in one transaction, or statement by statement (NO_TRANSACTION)."""
    if migration.in_transaction:
        async with conn.transaction():
            await conn.execute(migration.sql)
            await _record(conn, migration)
        return
    for statement in migration.statements():
        await conn.execute(statement)
    await _record(conn, migration)


async def _record(conn: asyncpg.Connection, migration: Migration) -> None:
    await conn.execute(
        "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)"
        " ON CONFLICT (version) DO UPDATE SET checksum = EXCLUDED.checksum",
        migration.version,
        migration.checksum,
    )


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    applied = asyncio.run(migrate(MigrateSettings()))
    print(f"migrations applied: {', '.join(applied) if applied else 'none (up to date)'}")


if __name__ == "__main__":
    main()
