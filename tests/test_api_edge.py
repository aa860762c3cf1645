"""The API's edge on a stack of its own with small limits (issue 23 items 5, 6, 7, 9): reads cannot exhaust the
database pool (timeouts, exports in short transactions, per-user caps on exports and streams, the write limiter on
the estimate and row preview), the live stream opens with a short-lived ticket for one job and ends when its
credential expires, and the browser headers, the model catalog and /metrics as a client sees them.

No writer and no trainer: jobs and predictions are inserted as the administrator."""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import asyncpg
import httpx
import pytest
from api_rows import insert_job
from httpx_sse import aconnect_sse
from own_stack import own_stack

from epochscope.local_stack import LocalStack
from epochscope_api.data.db import PoolTimeouts, create_pool, user_transaction

pytestmark = pytest.mark.stack

STREAMS, EXPORTS, TICKET_S, WRITES, RETRY_AFTER = 2, 1, 5, 6, 45
POOL_MAX, POOL_TIMEOUT_S, STATEMENT_MS, IDLE_MS = 4, 1, 2000, 3000
METRICS_TOKEN = "a-metrics-token-of-at-least-32-bytes"


@pytest.fixture(scope="module")
def edge_stack(tiny_model_dir: Path) -> Iterator[LocalStack]:
    env = {
        "EPOCHSCOPE_STREAMS_PER_USER": str(STREAMS),
        "EPOCHSCOPE_EXPORTS_PER_USER": str(EXPORTS),
        "EPOCHSCOPE_STREAM_TICKET_SECONDS": str(TICKET_S),
        "EPOCHSCOPE_QUOTA_WRITES_PER_MINUTE": str(WRITES),
        "EPOCHSCOPE_QUOTA_RETRY_AFTER_SECONDS": str(RETRY_AFTER),
        "EPOCHSCOPE_DB_POOL_MAX": str(POOL_MAX),
        "EPOCHSCOPE_DB_POOL_TIMEOUT_SECONDS": str(POOL_TIMEOUT_S),
        "EPOCHSCOPE_DB_STATEMENT_TIMEOUT_MS": str(STATEMENT_MS),
        "EPOCHSCOPE_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS": str(IDLE_MS),
        "EPOCHSCOPE_METRICS_TOKEN": METRICS_TOKEN,
    }
    with own_stack("epochscope-edge-", tiny_model_dir, env, writers=0, trainers=0) as stack:
        yield stack


@pytest.fixture
async def client(edge_stack: LocalStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=edge_stack.api_url, timeout=60) as client:
        yield client


@pytest.fixture
async def admin(edge_stack: LocalStack) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(edge_stack.postgres.admin_url)
    yield conn
    await conn.close()


def bearer(stack: LocalStack, user: str, **ttl: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.mint_token(user, **ttl)}"}


def new_user() -> str:
    return f"edge-{uuid.uuid4()}"


def assert_429(response: httpx.Response, limit: str) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["limit"] == limit
    assert response.headers["Retry-After"] == str(RETRY_AFTER)


async def stream_events(client: httpx.AsyncClient, url: str, **request: Any) -> list[str]:
    """The event names of a stream, read until the server ends it (a TimeoutError if it does not in 30 s)."""

    async def read() -> list[str]:
        async with aconnect_sse(client, "GET", url, **request) as source:
            assert source.response.status_code == 200, await source.response.aread()
            return [sse.event async for sse in source.aiter_sse()]

    return await asyncio.wait_for(read(), timeout=30)


async def test_a_ticket_opens_one_job_s_stream_and_the_stream_ends_when_the_ticket_expires(
    edge_stack: LocalStack, client: httpx.AsyncClient, admin: asyncpg.Connection
) -> None:
    owner = new_user()
    job_id, other_job = await insert_job(admin, owner), await insert_job(admin, owner)
    minted = await client.post(f"/v1/jobs/{job_id}/stream-tickets", headers=bearer(edge_stack, owner))
    assert minted.status_code == 200, minted.text
    ticket = minted.json()["ticket"]
    assert TICKET_S - 2 <= minted.json()["expires_at"] - time.time() <= TICKET_S + 1
    started = time.monotonic()
    events = await stream_events(client, f"/v1/jobs/{job_id}/stream", params={"ticket": ticket})
    assert events[0] == "status" and events[-1] == "expired", events  # a running job: only the ticket ends it
    assert TICKET_S - 2 <= time.monotonic() - started <= TICKET_S + 10
    refused = {
        "the same ticket for another job": {"ticket": ticket},
        "the user's bearer token in the URL": {"access_token": edge_stack.mint_token(owner)},
        "a bearer token as a ticket": {"ticket": edge_stack.mint_token(owner)},
    }
    for why, params in refused.items():
        response = await client.get(f"/v1/jobs/{other_job}/stream", params=params)
        assert response.status_code == 401, why
    expired = await client.get(f"/v1/jobs/{job_id}/stream", params={"ticket": ticket})
    assert expired.status_code == 401
    foreign = await client.post(f"/v1/jobs/{job_id}/stream-tickets", headers=bearer(edge_stack, new_user()))
    assert foreign.status_code == 404  # another user's job


async def test_a_stream_opened_with_a_bearer_token_ends_when_the_token_expires(
    edge_stack: LocalStack, client: httpx.AsyncClient, admin: asyncpg.Connection
) -> None:
    owner = new_user()
    job_id = await insert_job(admin, owner)
    headers = bearer(edge_stack, owner, ttl=timedelta(seconds=4))
    started = time.monotonic()
    events = await stream_events(client, f"/v1/jobs/{job_id}/stream", headers=headers)
    assert events[-1] == "expired" and time.monotonic() - started <= 15, events


async def test_a_user_holds_at_most_the_cap_of_live_streams(
    edge_stack: LocalStack, client: httpx.AsyncClient, admin: asyncpg.Connection
) -> None:
    owner, other = new_user(), new_user()
    job_id, others_job = await insert_job(admin, owner), await insert_job(admin, other)
    url = f"/v1/jobs/{job_id}/stream"
    headers = bearer(edge_stack, owner)
    async with aconnect_sse(client, "GET", url, headers=headers) as first:
        assert first.response.status_code == 200
        async with aconnect_sse(client, "GET", url, headers=headers) as second:
            assert second.response.status_code == 200
            assert_429(await asyncio.wait_for(client.get(url, headers=headers), timeout=10), "streams_per_user")
            async with aconnect_sse(client, "GET", f"/v1/jobs/{others_job}/stream", headers=bearer(edge_stack, other)):
                pass  # another user is unaffected
            assert (await client.get(f"/v1/jobs/{others_job}/stream", headers=headers)).status_code == 404
    for _ in range(50):  # the server sees the client go at its next write or ping
        async with aconnect_sse(client, "GET", url, headers=headers) as again:
            if again.response.status_code == 200:
                return
        await asyncio.sleep(0.2)
    pytest.fail("a closed stream's slot was never freed")


async def insert_predictions(admin: asyncpg.Connection, job_id: uuid.UUID, owner: str, rows: int) -> None:
    """`rows` predictions of 8 KiB of text each: an export of them outgrows every socket buffer on the way."""
    text = "x" * 8192
    await admin.executemany(
        "INSERT INTO training_predictions (job_id, step, sample_id, owner_id, round_index, epoch, sample_index,"
        " prompt, ground_truth, prediction, tokens_generated, event_id, occurred_at)"
        " VALUES ($1, $2, $3, $4, 0, 0, $2, $5, 'g', 'p', 1, $6, now())",
        [(job_id, i, f"row-{i:06d}", owner, text, uuid.uuid4()) for i in range(rows)],
    )


async def api_sessions_in_transaction(admin: asyncpg.Connection, stack: LocalStack) -> int:
    role = urlparse(stack.api_database_url).username
    return await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND state LIKE 'idle in transaction%'", role
    )


async def test_an_export_holds_no_transaction_while_the_client_reads_and_a_user_runs_one_at_a_time(
    edge_stack: LocalStack, client: httpx.AsyncClient, admin: asyncpg.Connection
) -> None:
    owner, rows = new_user(), 3000
    job_id = await insert_job(admin, owner, status="completed")
    await insert_predictions(admin, job_id, owner, rows)
    headers = bearer(edge_stack, owner)
    url = f"/v1/jobs/{job_id}/predictions/export"
    async with client.stream("GET", url, headers=headers) as held:  # opened, then not read: a stalled client
        assert held.status_code == 200
        await asyncio.sleep(1.5)
        assert await api_sessions_in_transaction(admin, edge_stack) == 0
        assert_429(await client.get(url, headers=headers), "exports_per_user")
        assert (await client.get("/v1/jobs", headers=headers)).status_code == 200  # the pool still serves
        lines = [line async for line in held.aiter_lines() if line]
    assert len(lines) == rows and json.loads(lines[-1])["sample_id"] == f"row-{rows - 1:06d}"
    assert (await client.get(url, headers=headers, params={"format": "csv"})).status_code == 200  # slot freed


async def test_waits_for_the_database_are_bounded_and_answered_503(
    edge_stack: LocalStack, client: httpx.AsyncClient, admin: asyncpg.Connection
) -> None:
    headers = bearer(edge_stack, new_user())
    async with admin.transaction():
        await admin.execute("LOCK TABLE datasets IN ACCESS EXCLUSIVE MODE")  # every dataset read now waits
        started = time.monotonic()
        waits = asyncio.gather(*(client.get("/v1/datasets", headers=headers) for _ in range(POOL_MAX + 2)))
        responses = await asyncio.wait_for(waits, timeout=20)
        elapsed = time.monotonic() - started
    assert {response.status_code for response in responses} == {503}, [r.text for r in responses]
    assert all(int(response.headers["Retry-After"]) >= 1 for response in responses)
    details = {response.json()["detail"] for response in responses}
    assert details == {"the database is busy: try again shortly", "the database took too long: try again shortly"}
    assert elapsed < STATEMENT_MS / 1000 + POOL_TIMEOUT_S + 5
    assert (await client.get("/v1/datasets", headers=headers)).status_code == 200
    pool = await create_pool(edge_stack.api_database_url, 1, 1, PoolTimeouts(1, STATEMENT_MS, IDLE_MS))
    async with pool.acquire() as conn:
        assert await conn.fetchval("SHOW statement_timeout") == f"{STATEMENT_MS // 1000}s"
        assert await conn.fetchval("SHOW idle_in_transaction_session_timeout") == f"{IDLE_MS // 1000}s"
    await pool.close()


async def test_the_estimate_and_the_row_preview_are_rate_limited_like_writes(
    edge_stack: LocalStack, client: httpx.AsyncClient
) -> None:
    headers = bearer(edge_stack, new_user())
    missing = str(uuid.uuid4())
    estimate = {"config": {"model": "tiny", "dataset_id": missing}}
    codes = []
    for attempt in range(WRITES):
        if attempt % 2:
            codes.append((await client.get(f"/v1/datasets/{missing}/rows", headers=headers)).status_code)
        else:
            codes.append((await client.post("/v1/predictions/estimate", json=estimate, headers=headers)).status_code)
    assert codes == [422, 404] * (WRITES // 2)  # each counted, though none found its dataset
    for refused in (
        await client.get(f"/v1/datasets/{missing}/rows", headers=headers),
        await client.post("/v1/predictions/estimate", json=estimate, headers=headers),
    ):
        assert refused.status_code == 429 and refused.json()["limit"] == "writes_per_minute"
    assert (await client.get("/v1/datasets", headers=headers)).status_code == 200  # other reads are not


async def test_browser_headers_model_catalog_and_metrics_as_a_client_sees_them(
    edge_stack: LocalStack, client: httpx.AsyncClient
) -> None:
    for response in (await client.get("/ui/"), await client.get("/v1/jobs"), await client.get("/docs")):
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
    models = (await client.get("/v1/models", headers=bearer(edge_stack, new_user()))).json()["items"]
    assert models and all("source" not in model for model in models), models
    assert (await client.get("/metrics")).status_code == 401
    assert (await client.get("/metrics", headers=bearer(edge_stack, new_user()))).status_code == 401
    metrics = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert metrics.status_code == 200 and "http_requests_total" in metrics.text


async def test_a_user_transaction_sets_any_user_id_exactly_and_leaves_nothing_on_the_pooled_connection(
    edge_stack: LocalStack,
) -> None:
    """The user goes into the transaction as an SQL literal (one round trip with BEGIN): quotes, backslashes and
    anything else a token's `sub` may hold come out as they went in, and nothing of it outlives the transaction on
    the pooled connection, which the pool does not reset."""
    pool = await create_pool(edge_stack.api_database_url, 1, 1, PoolTimeouts(1, STATEMENT_MS, IDLE_MS))
    try:
        for user_id in ("o'brien", "back\\slash\\'", "'); SELECT 1; --", "ünï\u200bcode", "$$"):
            async with user_transaction(pool, user_id) as conn:
                assert await conn.fetchval("SELECT current_setting('app.user_id')") == user_id
            async with pool.acquire() as conn:  # the same connection, back from the pool
                assert not conn.is_in_transaction()
                assert await conn.fetchval("SELECT current_setting('app.user_id', true)") in ("", None)
        with pytest.raises(RuntimeError):
            async with user_transaction(pool, "alice") as conn:
                await conn.execute("SELECT set_config('app.probe', 'committed', false)")  # session-wide if committed
                raise RuntimeError("the route failed")
        async with pool.acquire() as conn:  # rolled back: the session setting went with the transaction
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT current_setting('app.probe', true)") in ("", None)
        with pytest.raises(ValueError):
            async with user_transaction(pool, "nul\x00"):
                pass
    finally:
        await pool.close()
