"""Apply the versioned SQL migrations, once each, and create the service roles.

Idempotent: run at every stack start. Runs as an administrative role (EPOCHSCOPE_ADMIN_DATABASE_URL);
the API and writer roles it creates are LOGIN, NOSUPERUSER, NOBYPASSRLS.
"""

import asyncio
import logging
from importlib import resources

import asyncpg
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger("epochscope.migrate")

SERVICE_ROLES = ("epochscope_api", "epochscope_writer")
LOCK_KEY = 7_318_291  # pg_advisory_xact_lock key: one migrator at a time


class MigrateSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EPOCHSCOPE_")

    admin_database_url: str = "postgresql://postgres@127.0.0.1:5432/epochscope"
    api_db_password: SecretStr = SecretStr("epochscope_api")
    writer_db_password: SecretStr = SecretStr("epochscope_writer")


def migration_files() -> list[tuple[str, str]]:
    """(version, sql) for every migration shipped with the package, in order."""
    folder = resources.files("epochscope_api").joinpath("migrations")
    names = sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".sql"))
    return [(name.removesuffix(".sql"), folder.joinpath(name).read_text()) for name in names]


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


async def migrate(settings: MigrateSettings) -> list[str]:
    """Apply pending migrations; return the versions applied now."""
    conn = await asyncpg.connect(settings.admin_database_url)
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
            passwords = {
                "epochscope_api": settings.api_db_password.get_secret_value(),
                "epochscope_writer": settings.writer_db_password.get_secret_value(),
            }
            for role in SERVICE_ROLES:
                await ensure_role(conn, role, passwords[role])
            database = await conn.fetchval("SELECT current_database()")
            await conn.execute(f'GRANT CONNECT ON DATABASE "{database}" TO {", ".join(SERVICE_ROLES)}')
            await conn.execute(f"GRANT USAGE ON SCHEMA public TO {', '.join(SERVICE_ROLES)}")
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
            applied = []
            for version, sql in migration_files():
                if version in done:
                    continue
                log.info("applying migration %s", version)
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
                applied.append(version)
            return applied
    finally:
        await conn.close()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    applied = asyncio.run(migrate(MigrateSettings()))
    print(f"migrations applied: {', '.join(applied) if applied else 'none (up to date)'}")


if __name__ == "__main__":
    main()
