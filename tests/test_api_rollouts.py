"""GET /v1/jobs/{id}/rollouts on the shared stack: keyset pages by step visit every stored rollout once, a step
filter, a foreign cursor is a 422 and another user's job a 404 (RLS)."""

import json
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from api_rows import admin_fixture, auth, insert_job  # noqa: F401  fixture

pytestmark = pytest.mark.stack

STEPS, PER_STEP = 3, 3


async def insert_rollouts(admin: asyncpg.Connection, job_id: uuid.UUID, owner: str) -> None:
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
            for step in range(1, STEPS + 1)
            for index in range(PER_STEP)
        ],
    )


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
