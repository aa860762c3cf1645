"""Pages and the live stream bounded in bytes as well as rows (EPOCHSCOPE_PAGE_MAX_BYTES), on the shared stack.

Predictions with ~1 MB texts are inserted as the administrator: a page returns fewer rows than asked for, and
the cursor still visits every row exactly once; the SSE stream delivers every row.
"""

import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from api_rows import admin_fixture, auth, delivered, insert_job, notify, read_stream  # noqa: F401  fixture

pytestmark = pytest.mark.stack

BIG = 1 << 20  # bytes of each large prediction text
ROWS = 14


async def insert_large_predictions(admin: asyncpg.Connection, job_id: uuid.UUID, owner: str) -> None:
    """ROWS predictions of one round, each with ~1 MB of prediction text (and a large sample's prompt)."""
    async with admin.transaction():
        await admin.executemany(
            "INSERT INTO training_predictions (job_id, step, sample_id, owner_id, round_index, epoch, sample_index,"
            " prompt, ground_truth, prediction, event_id, occurred_at)"
            " VALUES ($1, $2::int, $3, $4, $2::int, $2::int::float8, $5, 'p', 'g', $6, $7, now())",
            [
                (job_id, 1 + i % 2, f"row-{i:04d}", owner, i, chr(ord("a") + i % 26) * BIG, uuid.uuid4())
                for i in range(ROWS)
            ],
        )
        await notify(admin, job_id, "predictions")


async def page_max_bytes(client: httpx.AsyncClient) -> int:
    return (await client.get("/v1/limits")).json()["page_max_bytes"]


async def test_prediction_pages_of_large_rows_stop_at_the_byte_bound_and_visit_every_row_once(
    full_stack: Any, admin: asyncpg.Connection
) -> None:
    owner = f"big-rows-{uuid.uuid4()}"
    job_id = await insert_job(admin, owner, status="completed")
    await insert_large_predictions(admin, job_id, owner)
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=60, headers=auth(full_stack, owner)) as client:
        bound = await page_max_bytes(client)
        assert bound < ROWS * BIG  # the pages below must be cut by bytes, not rows
        seen: list[str] = []
        sizes: list[int] = []
        cursor, has_more = None, True
        while has_more:
            params = {"limit": 100} | ({"cursor": cursor} if cursor else {})
            response = await client.get(f"/v1/jobs/{job_id}/predictions", params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            assert page["items"], page  # always one row at least: progress is made
            seen += [row["sample_id"] for row in page["items"]]
            sizes.append(len(response.content))
            cursor, has_more = page["next_cursor"], page["has_more"]
    assert sorted(seen) == [f"row-{i:04d}" for i in range(ROWS)] and len(seen) == ROWS
    assert len(sizes) > 1
    assert all(size <= bound + BIG + 4096 for size in sizes), sizes  # the bound, passed by less than one row


async def test_sample_history_and_the_stream_of_large_rows_are_complete(
    full_stack: Any, admin: asyncpg.Connection
) -> None:
    owner = f"big-stream-{uuid.uuid4()}"
    job_id = await insert_job(admin, owner, status="running")
    await insert_large_predictions(admin, job_id, owner)
    await admin.execute("UPDATE jobs SET status = 'completed' WHERE job_id = $1", job_id)
    headers = auth(full_stack, owner)
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=60, headers=headers) as client:
        events, _ = await read_stream(client, f"/v1/jobs/{job_id}/stream", headers, None)
        keys = delivered(events)["prediction"]
        assert sorted(keys) == sorted((1 + i % 2, f"row-{i:04d}") for i in range(ROWS)) and len(keys) == ROWS
        assert events[-1] == {"event": "end", "data": "completed"}
        history = await client.get(f"/v1/jobs/{job_id}/samples/row-0000")
        assert history.status_code == 200 and history.json()["has_more"] is False
        rounds = await client.get(f"/v1/jobs/{job_id}/rounds")
        assert [item["round_index"] for item in rounds.json()["items"]] == [1, 2]


async def test_a_sample_history_of_many_large_rounds_comes_in_pages(full_stack: Any, admin: asyncpg.Connection) -> None:
    owner = f"big-sample-{uuid.uuid4()}"
    job_id = await insert_job(admin, owner, status="completed")
    rounds = 10
    await admin.executemany(
        "INSERT INTO training_predictions (job_id, step, sample_id, owner_id, round_index, epoch, sample_index,"
        " prompt, ground_truth, prediction, event_id, occurred_at)"
        " VALUES ($1, $2::int, 'row-0000', $3, $2::int, $2::int::float8, 0, 'p', 'g', $4, $5, now())",
        [(job_id, step, owner, "x" * BIG, uuid.uuid4()) for step in range(rounds)],
    )
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=60, headers=auth(full_stack, owner)) as client:
        bound = await page_max_bytes(client)
        assert bound < rounds * BIG  # the pages below must be cut by bytes
        steps: list[int] = []
        sizes: list[int] = []
        after, has_more = -1, True
        while has_more:
            response = await client.get(f"/v1/jobs/{job_id}/samples/row-0000", params={"after_step": after})
            assert response.status_code == 200, response.text
            page = response.json()
            assert page["rounds"], page  # always one round at least: progress is made
            steps += [item["step"] for item in page["rounds"]]
            sizes.append(len(response.content))
            after, has_more = steps[-1], page["has_more"]
    assert steps == list(range(rounds)) and len(sizes) > 1
    assert all(size <= bound + BIG + 4096 for size in sizes), sizes  # the bound, passed by less than one round
