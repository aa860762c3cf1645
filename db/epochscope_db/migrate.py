"""Apply the versioned SQL migrations, once each, and create the service roles.

Idempotent: run at every stack start. Runs as an administrative role (EPOCHSCOPE_ADMIN_DATABASE_URL);
the API and writer roles it creates are LOGIN, NOSUPERUSER, NOBYPASSRLS. Each applied migration's
SHA-256 is recorded; a shipped file that no longer matches what was applied stops the migrator before
it changes anything, since editing an applied migration changes nothing in a database that ran it.
"""

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from importlib import resources

import asyncpg
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from epochscope_runtime.secret_policy import Environment, refuse_weak_secrets

log = logging.getLogger("epochscope.migrate")

SERVICE_ROLES = ("epochscope_api", "epochscope_writer")
LOCK_KEY = 7_318_291  # pg_advisory_xact_lock key: one migrator at a time


class MigrateSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EPOCHSCOPE_")

    environment: Environment = Field(
        default=Environment.PRODUCTION, description="production refuses default or weak role passwords."
    )
    admin_database_url: str = "postgresql://postgres@127.0.0.1:5432/epochscope"
    api_db_password: SecretStr = SecretStr("epochscope_api")
    writer_db_password: SecretStr = SecretStr("epochscope_writer")

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
    # Role names are constants above; the password is passed as a literal via format('%L').
    statement = await conn.fetchval(
        "SELECT format('%s ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB PASSWORD %L',"
        " $1::text, $2::text, $3::text)",
        verb,
        role,
        password,
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
    """Apply pending migrations; return the versions applied now. Raises MigrationChanged, changing nothing."""
    conn = await asyncpg.connect(settings.admin_database_url)
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
            await _ensure_roles(conn, settings)
            applied = await _applied(conn)
            shipped = migration_files()
            changed = changed_migrations(applied, shipped)
            if changed:
                raise MigrationChanged(f"applied migrations edited since: {', '.join(changed)}")
            new = []
            for migration in shipped:
                if migration.version not in applied:
                    log.info("applying migration %s", migration.version)
                    await conn.execute(migration.sql)
                    new.append(migration.version)
                elif applied[migration.version] is not None:
                    continue  # applied, checksum matches
                # New, or applied before checksums were kept: record what is shipped now.
                await conn.execute(
                    "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)"
                    " ON CONFLICT (version) DO UPDATE SET checksum = EXCLUDED.checksum",
                    migration.version,
                    migration.checksum,
                )
            return new
    finally:
        await conn.close()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    applied = asyncio.run(migrate(MigrateSettings()))
    print(f"migrations applied: {', '.join(applied) if applied else 'none (up to date)'}")


if __name__ == "__main__":
    main()
