"""The predictions page's one statement (migration 0044's function `prediction_page`), on the shared stack: it sets
the user for its own transaction only, row-level security in the database keeps another user's job from it, and the
JSON Postgres builds is what the API's Prediction model renders for the same rows."""

import json
import uuid

import asyncpg
import httpx
import pytest
from api_rows import admin_fixture, auth, insert_job, insert_round  # noqa: F401  fixture

from epochscope.local_stack import LocalStack
from epochscope_api.data.db import PoolTimeouts, create_pool, pooled_connection, user_transaction
from epochscope_api.data.predictions import fetch_new_predictions, fetch_prediction_page
from epochscope_api.errors import JobNotFound

pytestmark = pytest.mark.stack

TIMEOUTS = PoolTimeouts(acquire_s=5, statement_ms=10_000, idle_in_transaction_ms=10_000)


async def test_the_predictions_page_sets_its_user_for_its_own_statement_alone(
    full_stack: LocalStack, admin: asyncpg.Connection
) -> None:
    """The page is one statement that sets the user for its own transaction (migration 0044's function): the user
    sees their rows, the pooled connection keeps no user after it, and another user's job is no job, refused by
    row-level security in the database (the function is SECURITY INVOKER; the API's role has no BYPASSRLS)."""
    owner, other = f"page-{uuid.uuid4()}", f"page-{uuid.uuid4()}"
    job_id = await insert_job(admin, owner, status="completed")
    await insert_round(admin, job_id, owner, step=2, samples=3)
    pool = await create_pool(full_stack.api_database_url, 1, 1, TIMEOUTS)
    try:
        async with pooled_connection(pool) as conn:
            page = json.loads(await fetch_prediction_page(conn, owner, job_id, None, None, 10, None, 1 << 20))
            assert [item["sample_id"] for item in page["items"]] == [f"row-{i:06d}" for i in range(3)], page
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT current_setting('app.user_id', true)") in ("", None)
            assert await conn.fetchval("SELECT count(*) FROM training_predictions WHERE job_id = $1", job_id) == 0
            with pytest.raises(JobNotFound):
                await fetch_prediction_page(conn, other, job_id, None, None, 10, None, 1 << 20)
        async with pooled_connection(pool) as conn:  # the same connection, back from the pool
            assert await conn.fetchval("SELECT count(*) FROM jobs WHERE job_id = $1", job_id) == 0
    finally:
        await pool.close()
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=60) as client:
        path = f"/v1/jobs/{job_id}/predictions"
        assert (await client.get(path, headers=auth(full_stack, other))).status_code == 404
        mine = await client.get(path, headers=auth(full_stack, owner))
        assert mine.status_code == 200 and len(mine.json()["items"]) == 3, mine.text


async def test_the_page_built_by_postgres_is_the_prediction_model_s_json(
    full_stack: LocalStack, admin: asyncpg.Connection
) -> None:
    """Differential: the page function's JSON (migration 0044) against the same rows read as columns and rendered by
    the API's Prediction model (as the live stream does): the same items, with a verdict as the `human` grade,
    non-finite numbers as null, no scores while one is missing, and times with and without a fraction of a second."""
    owner = f"page-{uuid.uuid4()}"
    job_id = await insert_job(admin, owner, status="completed")
    await insert_round(admin, job_id, owner, step=2, samples=3)
    await admin.execute(
        "INSERT INTO training_predictions (job_id, step, sample_id, owner_id, round_index, epoch, sample_index, prompt,"
        " ground_truth, prediction, latency_ms, exact_match, f1, rouge_l, grades, truncated, event_id, occurred_at,"
        " created_at) VALUES ($1, 3, 'row-odd', $2, 3, 'NaN', 9, 'p', NULL, 'a', 'Infinity', 1, NULL, 0.5,"
        ' \'{"json": {"score": 0.0, "passed": false, "error": "bad"}}\', \'["prediction"]\', $3, now(),'
        " '2026-01-02T03:04:05Z')",
        job_id,
        owner,
        uuid.uuid4(),
    )
    await admin.execute(
        "INSERT INTO prediction_verdicts (job_id, step, sample_id, owner_id, good)"
        " VALUES ($1, 2, 'row-000001', $2, true)",
        job_id,
        owner,
    )
    pool = await create_pool(full_stack.api_database_url, 1, 1, TIMEOUTS)
    try:
        async with pooled_connection(pool) as conn:
            page = json.loads(await fetch_prediction_page(conn, owner, job_id, None, None, 10, None, 1 << 20))
        async with user_transaction(pool, owner) as conn:
            rendered, _ = await fetch_new_predictions(conn, job_id, 0, 10, 1 << 20)
    finally:
        await pool.close()
    assert len(page["items"]) == 4
    assert page["items"] == [json.loads(prediction.model_dump_json()) for _, prediction in rendered]
    assert page["items"][1]["grades"]["human"] == {"score": 1.0, "passed": True, "error": None}
    odd = page["items"][3]
    assert (odd["epoch"], odd["latency_ms"], odd["scores"]) == (None, None, None)
    assert odd["created_at"] == "2026-01-02T03:04:05Z"
