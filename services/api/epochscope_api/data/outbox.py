"""The outbox's SQL: a row queued in the caller's transaction, a batch taken for publishing, marked published or
set aside (each without its job token from then on), and old rows deleted. The relay is bus/outbox.py."""

from datetime import timedelta

import asyncpg

from epochscope_runtime.command_signing import without_job_token

NOTIFY_CHANNEL = "outbox"


async def insert_outbox_row(conn: asyncpg.Connection, topic: str, key: str, payload: str) -> None:
    """The event, to be published after the caller's transaction commits; the relay is woken."""
    await conn.execute("INSERT INTO outbox (topic, key, payload) VALUES ($1, $2, $3)", topic, key, payload)
    await conn.execute(f"NOTIFY {NOTIFY_CHANNEL}")


async def pending_rows(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """Up to `limit` rows not yet published, oldest first, locked (other replicas skip them)."""
    return await conn.fetch(
        "SELECT id, topic, key, payload FROM outbox WHERE published_at IS NULL"
        " ORDER BY id FOR UPDATE SKIP LOCKED LIMIT $1",
        limit,
    )


async def mark_published(conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> None:
    """The rows published, their payloads without a job token."""
    await conn.execute(
        "UPDATE outbox SET published_at = now(), payload = p.payload"
        " FROM unnest($1::bigint[], $2::text[]) AS p(id, payload) WHERE outbox.id = p.id",
        [row["id"] for row in rows],
        [tokenless(row["payload"]) for row in rows],
    )


async def mark_set_aside(conn: asyncpg.Connection, row: asyncpg.Record, reason: str) -> None:
    """The row never to be published, with the reason; its payload without a job token."""
    await conn.execute(
        "UPDATE outbox SET published_at = now(), set_aside_reason = $2, payload = $3 WHERE id = $1",
        row["id"],
        reason,
        tokenless(row["payload"]),
    )


def tokenless(payload: str) -> str:
    """The payload without its job token: a published (or set-aside) event no longer needs it."""
    return without_job_token(payload.encode())[0].decode()


async def delete_published(db: asyncpg.Pool | asyncpg.Connection, retention: timedelta) -> int:
    """Delete rows published (or set aside) more than `retention` ago; how many."""
    status = await db.execute("DELETE FROM outbox WHERE published_at < now() - $1::interval", retention)
    return int(status.split()[-1])
