"""The readiness probe's one query."""

import asyncpg


async def database_answers(pool: asyncpg.Pool) -> bool:
    """Whether a pooled connection answers a query."""
    try:
        async with pool.acquire() as conn:
            return bool(await conn.fetchval("SELECT true"))
    except Exception:
        return False
