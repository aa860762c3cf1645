"""Postgres access for the API: one pool, and transactions scoped to the current user for RLS."""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, min_size: int, max_size: int) -> asyncpg.Pool:
    return await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=_init_connection)


@asynccontextmanager
async def user_transaction(pool: asyncpg.Pool, user_id: str) -> AsyncIterator[asyncpg.Connection]:
    """A transaction in which row-level security sees only `user_id`'s rows."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT set_config('app.user_id', $1, true)", user_id)
        yield conn
