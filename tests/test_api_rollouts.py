"""GET /v1/jobs/{id}/rollouts on the shared stack: keyset pages by step visit every stored rollout once, a step
filter, a foreign cursor is a 422 and another user's job a 404 (RLS). The live stream delivers each rollout once,
across a reconnect; the export holds exactly the API's rows in each format."""

import asyncio
import csv
import io
import json
import uuid
from collections import Counter
from typing import Any

import asyncpg
import httpx
import pyarrow.parquet as pq
import pytest
from api_rows import admin_fixture, auth, insert_job, notify, read_stream  # noqa: F401  fixture

pytestmark = pytest.mark.stack

STEPS, PER_STEP = 3, 3


async def insert_rollouts(
    admin: asyncpg.Connection, job_id: uuid.UUID, owner: str, steps: range = range(1, STEPS + 1)
) -> None:
    """PER_STEP rollouts at each of `steps`, announced as the writer announces them."""
    await admin.executemany(
        "INSERT INTO training_rollouts (job_id, step, completion_index, owner_id, prompt, completion, rewards, reward,"
        " advantage, truncated, event_id, occurred_at) VALUES ($1, $2, $3, $4, 'p', $5, $6::jsonb, $7, $8,"
        " '[]'::jsonb, $9, now())",
        [
            (
                job_id,
                step,
                index,
                owner,
                f"c{step}.{index}",
                json.dumps({"label": 1.0, "is_json": None}),
                1.0,
                -0.25,
                uuid.uuid4(),
            )
            for step in steps
            for index in range(PER_STEP)
        ],
    )
    await notify(admin, job_id, "rollouts")


async def test_rollout_pages_visit_every_row_once_and_another_user_gets_404(
    full_stack: Any, admin: asyncpg.Connection
) -> None:
    owner = f"rollouts-{uuid.uuid4()}"
    job_id = await insert_job(admin, owner, status="completed")
    await insert_rollouts(admin, job_id, owner)
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=60, headers=auth(full_stack, owner)) as client:
        seen: list[tuple[int, int]] = []
        cursor, has_more = None, True
        while has_more:
            params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            response = await client.get(f"/v1/jobs/{job_id}/rollouts", params=params)
            assert response.status_code == 200, response.text
            page = response.json()
            assert 1 <= len(page["items"]) <= 2
            seen += [(row["step"], row["completion_index"]) for row in page["items"]]
            cursor, has_more = page["next_cursor"], page["has_more"]
        assert seen == [(step, index) for step in range(1, STEPS + 1) for index in range(PER_STEP)]
        step_two = (await client.get(f"/v1/jobs/{job_id}/rollouts", params={"step": 2})).json()["items"]
        assert [row["completion"] for row in step_two] == ["c2.0", "c2.1", "c2.2"]
        assert step_two[0]["rewards"] == {"label": 1.0, "is_json": None} and step_two[0]["advantage"] == -0.25
        foreign = await client.get(f"/v1/jobs/{job_id}/rollouts", params={"cursor": "bm90LWEta2V5"})
        assert foreign.status_code == 422
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=60, headers=auth(full_stack, "mallory")) as other:
        assert (await other.get(f"/v1/jobs/{job_id}/rollouts")).status_code == 404


async def all_pages(client: httpx.AsyncClient, job_id: uuid.UUID) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor, has_more = None, True
    while has_more:
        page = (await client.get(f"/v1/jobs/{job_id}/rollouts", params={"cursor": cursor or ""})).json()
        rows += page["items"]
        cursor, has_more = page["next_cursor"], page["has_more"]
    return rows


def streamed_rollouts(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [json.loads(event["data"]) for event in events if event["event"] == "rollout"]


async def test_the_stream_delivers_each_rollout_once_across_a_reconnect(
    full_stack: Any, admin: asyncpg.Connection
) -> None:
    owner = f"rollouts-{uuid.uuid4()}"
    job_id = await insert_job(admin, owner)
    await insert_rollouts(admin, job_id, owner, range(1, 2))  # before the client connects
    url, headers = f"/v1/jobs/{job_id}/stream", auth(full_stack, owner)
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30, headers=headers) as client:
        first_task = asyncio.create_task(read_stream(client, url, headers, stop_at=Counter(rollout=2 * PER_STEP)))
        await asyncio.sleep(0.5)
        await insert_rollouts(admin, job_id, owner, range(2, 3))  # while it is connected
        first, last_id = await asyncio.wait_for(first_task, 20)
        await insert_rollouts(admin, job_id, owner, range(3, 5))  # while it is away
        await admin.execute("UPDATE jobs SET status = 'completed' WHERE job_id = $1", job_id)
        await notify(admin, job_id, "status")
        second, _ = await asyncio.wait_for(read_stream(client, url, headers | {"Last-Event-ID": last_id}, None), 20)
        pages = await all_pages(client, job_id)
    streamed = streamed_rollouts(first) + streamed_rollouts(second)
    keys = [(row["step"], row["completion_index"]) for row in streamed]
    assert keys == [(step, index) for step in range(1, 5) for index in range(PER_STEP)]  # each once, in order
    assert streamed == pages  # the stream's rows are the API's rows


GRPO_CONFIG = {
    "model": "tiny",
    "dataset_id": str(uuid.uuid4()),
    "batch_size": 4,
    "method": {
        "type": "grpo",
        "rewards": [
            {"grader": {"type": "string_check", "name": "label", "reference_field": "label"}},
            {"grader": "is_json"},
        ],
        "num_generations": 2,
    },
    "predictions": {"graders": [{"type": "json_parse", "name": "is_json"}]},
}


async def test_each_rollout_export_format_holds_exactly_the_api_s_rows(
    full_stack: Any, admin: asyncpg.Connection
) -> None:
    owner = f"rollouts-{uuid.uuid4()}"
    job_id = await insert_job(admin, owner, status="completed", config=GRPO_CONFIG)
    await insert_rollouts(admin, job_id, owner)
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=60, headers=auth(full_stack, owner)) as client:
        pages = await all_pages(client, job_id)
        url = f"/v1/jobs/{job_id}/rollouts/export"
        exports = {fmt: await client.get(url, params={"format": fmt}) for fmt in ("jsonl", "csv", "parquet")}
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=60, headers=auth(full_stack, "mallory")) as other:
        assert (await other.get(url)).status_code == 404
    assert all(response.status_code == 200 for response in exports.values()), exports
    assert f"rollouts-{job_id}.parquet" in exports["parquet"].headers["content-disposition"]
    lines = [json.loads(line) for line in exports["jsonl"].text.splitlines()]
    assert [{k: v for k, v in line.items() if k not in ("job_id", "job_name")} for line in lines] == pages
    assert {line["job_id"] for line in lines} == {str(job_id)} and len(pages) == STEPS * PER_STEP
    flat = [
        (row["step"], row["completion_index"], row["completion"], row["reward.label"], row["reward.is_json"])
        for row in pq.read_table(io.BytesIO(exports["parquet"].content)).to_pylist()
    ]
    expected = [(r["step"], r["completion_index"], r["completion"], 1.0, None) for r in pages]
    assert flat == expected
    from_csv = list(csv.DictReader(io.StringIO(exports["csv"].text)))
    assert [(int(r["step"]), r["completion"], r["reward.label"], r["reward.is_json"]) for r in from_csv] == [
        (step, completion, "1.0", "") for step, _, completion, _, _ in expected
    ]
