"""`epochscope backup` and `epochscope restore`: a stopped local stack's database and object store, together.

A backup folder holds `database.dump` (pg_dump's custom format), `objects/` (the object store's files), `secrets.json`
(the stack's secrets: its tokens and role passwords stay valid) and `manifest.json`. The database is dumped first
and the store copied after it: a checkpoint or dataset row is written only after its files are in the store, so every
row in the dump has its files in the copy. The backup checks that before it reports success. The stack must be
stopped (its Postgres is started here, alone): no job writes or prunes while it is copied. docs/operations.md has
the production steps (a managed Postgres and an S3 bucket).
"""

import asyncio
import json
import os
import shutil
from pathlib import Path

import asyncpg

from epochscope.local_stack import LocalStack
from epochscope.postgres import PostgresCluster
from epochscope.stack_errors import StackError
from epochscope_db.migrate import MigrateSettings, ensure_service_roles

DUMP = "database.dump"
OBJECTS = "objects"
SECRETS = "secrets.json"
MANIFEST = "manifest.json"
# Each stored object a row names: checkpoints not pruned (one object per file) and datasets.
REFERENCED_OBJECTS = (
    "SELECT c.key || '/' || (f ->> 'name') FROM job_checkpoints c, jsonb_array_elements(c.files) f"
    " WHERE c.deleted_at IS NULL UNION ALL SELECT object_key FROM datasets"
)


def backup(stack: LocalStack, target: Path) -> dict[str, int]:
    """Back `stack` up into the new folder `target`; returns the manifest's counts."""
    if stack.postgres.running():
        raise StackError(f"the stack in {stack.data_dir} is running; stop it (Ctrl-C) before a backup")
    if target.exists():
        raise StackError(f"{target} exists; name a new folder for the backup")
    target.mkdir(parents=True, mode=0o700)
    stack.postgres.start()
    try:
        with open(target / DUMP, "wb") as dump:
            stack.postgres.dump(dump)
        referenced = asyncio.run(_referenced_objects(stack.postgres.admin_url))
    finally:
        stack.postgres.stop()
    if stack.object_store_dir.exists():
        shutil.copytree(stack.object_store_dir, target / OBJECTS)
    missing = sorted(key for key in referenced if not (target / OBJECTS / key).is_file())
    if missing:
        raise StackError(f"the store lacks {len(missing)} object(s) the database names, e.g. {missing[0]}")
    _copy_private(stack.data_dir / SECRETS, target / SECRETS)
    counts = {"objects_referenced": len(referenced), "dump_bytes": (target / DUMP).stat().st_size}
    (target / MANIFEST).write_text(json.dumps(counts, indent=2))
    return counts


def restore(source: Path, data_dir: Path, postgres_dir: Path | None = None) -> None:
    """Make a new stack in the new (or empty) `data_dir` from the backup folder `source`; `epochscope up` then serves
    it. Its secrets are the backup's, copied before the stack is opened (a stack makes secrets it lacks)."""
    if not (source / MANIFEST).is_file():
        raise StackError(f"{source} is not a finished backup (no {MANIFEST})")
    if (data_dir.exists() and any(data_dir.iterdir())) or PostgresCluster.for_stack(
        data_dir, postgres_dir
    ).home.exists():
        raise StackError(f"{data_dir} (or its Postgres cluster) exists; restore into a new folder")
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    _copy_private(source / SECRETS, data_dir / SECRETS)
    stack = LocalStack(data_dir, postgres_dir=postgres_dir)
    if (source / OBJECTS).exists():
        shutil.copytree(source / OBJECTS, stack.object_store_dir)
    secrets = json.loads((source / SECRETS).read_text())
    stack.postgres.start()
    try:
        settings = MigrateSettings(
            environment="development",
            admin_database_url=stack.postgres.admin_url,
            api_db_password=secrets["api_db_password"],
            writer_db_password=secrets["writer_db_password"],
        )
        asyncio.run(ensure_service_roles(settings))  # roles live in the cluster, not in the dump
        with open(source / DUMP, "rb") as dump:
            stack.postgres.restore(dump)
    finally:
        stack.postgres.stop()


async def _referenced_objects(admin_url: str) -> set[str]:
    conn = await asyncpg.connect(admin_url)
    try:
        return {row[0] for row in await conn.fetch(REFERENCED_OBJECTS)}
    finally:
        await conn.close()


def _copy_private(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
    os.chmod(target, 0o600)
