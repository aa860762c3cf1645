"""The API against the real local stack: fuzzing, the cross-user matrix, live pagination, the SSE stream.

Jobs here are inserted straight into Postgres as the administrator (no start event), so no trainer
picks them up; predictions are inserted the same way, each followed by the writer's NOTIFY.
"""

import asyncio
import json
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from httpx_sse import aconnect_sse

from epochscope_schemas.notify import job_channel

pytestmark = pytest.mark.stack


@pytest.fixture
async def admin(full_stack: Any) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(full_stack.postgres.admin_url)
    yield conn
    await conn.close()


async def insert_job(admin: asyncpg.Connection, owner: str, status: str = "running") -> uuid.UUID:
    job_id = uuid.uuid4()
    config = {"model": "tiny", "dataset_path": "/dev/null"}
    await admin.execute(
        "INSERT INTO jobs (job_id, owner_id, config, status, token_expires_at) VALUES ($1, $2, $3, $4, $5)",
        job_id,
        owner,
        json.dumps(config),
        status,
        datetime.now(UTC) + timedelta(hours=1),
    )
    return job_id


async def insert_round(admin: asyncpg.Connection, job_id: uuid.UUID, owner: str, step: int, samples: int = 3) -> None:
    """One round's predictions, committed and announced the way the writer does it."""
    async with admin.transaction():
        await admin.executemany(
            "INSERT INTO training_predictions (job_id, step, sample_id, owner_id, round_index, epoch, sample_index,"
            " prompt, ground_truth, prediction, event_id, occurred_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, 'p', 'g', $8, $9, now())",
            [
                (job_id, step, f"row-{i:06d}", owner, step, float(step), i, f"answer {step}/{i}", uuid.uuid4())
                for i in range(samples)
            ],
        )
        await admin.execute("SELECT pg_notify($1, $2)", job_channel(job_id), json.dumps({"step": step}))


def auth(full_stack: Any, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {full_stack.mint_token(user)}"}


async def test_another_users_job_is_404_on_every_endpoint(full_stack: Any, admin: asyncpg.Connection) -> None:
    job_id = await insert_job(admin, "alice")
    await insert_round(admin, job_id, "alice", step=1)
    requests = [
        ("GET", f"/v1/jobs/{job_id}"),
        ("GET", f"/v1/jobs/{job_id}/predictions"),
        ("GET", f"/v1/jobs/{job_id}/rounds"),
        ("GET", f"/v1/jobs/{job_id}/samples/row-000000"),
        ("GET", f"/v1/jobs/{job_id}/stream"),
        ("POST", f"/v1/jobs/{job_id}/cancel"),
        ("DELETE", f"/v1/jobs/{job_id}"),
    ]
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        for method, path in requests:
            assert (await client.request(method, path, headers=auth(full_stack, "bob"))).status_code == 404, path
            assert (await client.request(method, path)).status_code == 401, path
        listed = (await client.get("/v1/jobs", headers=auth(full_stack, "bob"), params={"limit": 500})).json()
        assert str(job_id) not in {job["job_id"] for job in listed["items"]}
        for method, path in requests[:4]:  # and the owner still sees everything: the 404s were not vacuous
            assert (await client.request(method, path, headers=auth(full_stack, "alice"))).status_code == 200, path


async def test_pagination_returns_every_row_once_while_rows_are_inserted(
    full_stack: Any, admin: asyncpg.Connection
) -> None:
    job_id = await insert_job(admin, "pager")
    rounds = 40

    async def insert_rounds() -> None:
        for step in range(1, rounds + 1):
            await insert_round(admin, job_id, "pager", step=step, samples=5)
            await asyncio.sleep(0.01)

    seen: list[tuple[int, str]] = []
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30, headers=auth(full_stack, "pager")) as client:
        inserter = asyncio.create_task(insert_rounds())
        cursor = None
        while not (inserter.done() and seen and len(seen) >= rounds * 5):
            params = {"limit": 7} | ({"cursor": cursor} if cursor else {})
            page = (await client.get(f"/v1/jobs/{job_id}/predictions", params=params)).json()
            seen += [(row["step"], row["sample_id"]) for row in page["items"]]
            cursor = page["next_cursor"]
            if not page["has_more"]:
                await asyncio.sleep(0.02)
        await inserter
    assert len(seen) == len(set(seen)) == rounds * 5
    assert seen == sorted(seen)


async def read_stream(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], stop_after: int | None
) -> tuple[list[dict[str, Any]], str | None]:
    """(events, last id) until `end`, or until `stop_after` prediction events."""
    events: list[dict[str, Any]] = []
    last_id = headers.get("Last-Event-ID")
    async with aconnect_sse(client, "GET", url, headers=headers) as source:
        async for sse in source.aiter_sse():
            events.append({"event": sse.event, "id": sse.id, "data": sse.data})
            if sse.event == "prediction":
                last_id = sse.id
            if sse.event == "end" or (stop_after and sum(e["event"] == "prediction" for e in events) >= stop_after):
                break
    return events, last_id


async def test_stream_delivers_new_rows_and_resumes_without_gaps_or_repeats(
    full_stack: Any, admin: asyncpg.Connection
) -> None:
    job_id = await insert_job(admin, "viewer")
    await insert_round(admin, job_id, "viewer", step=1)  # before the client connects
    url = f"/v1/jobs/{job_id}/stream"
    headers = auth(full_stack, "viewer")
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        first_task = asyncio.create_task(read_stream(client, url, headers, stop_after=6))
        await asyncio.sleep(0.5)
        await insert_round(admin, job_id, "viewer", step=2)  # after it connected
        first, last_id = await asyncio.wait_for(first_task, 20)
        # Disconnected; more rows land, then the job ends.
        await insert_round(admin, job_id, "viewer", step=3)
        await admin.execute("UPDATE jobs SET status = 'completed' WHERE job_id = $1", job_id)
        await admin.execute("SELECT pg_notify($1, '{}')", job_channel(job_id))
        second, _ = await asyncio.wait_for(read_stream(client, url, headers | {"Last-Event-ID": last_id}, None), 20)

    def keys(events: list[dict[str, Any]]) -> list[tuple[int, str]]:
        rows = [json.loads(e["data"]) for e in events if e["event"] == "prediction"]
        return [(row["step"], row["sample_id"]) for row in rows]

    delivered = keys(first) + keys(second)
    assert len(delivered) == len(set(delivered)) == 9
    assert sorted(step for step, _ in delivered) == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert second[-1] == {"event": "end", "id": None, "data": "completed"}
    assert any(e["event"] == "status" for e in first)


async def test_schemathesis_finds_no_server_error_and_every_response_matches_the_spec(
    full_stack: Any, admin: asyncpg.Connection, tmp_path: Path
) -> None:
    job_id = await insert_job(admin, "fuzzer", status="completed")
    await insert_round(admin, job_id, "fuzzer", step=1)
    config = tmp_path / "schemathesis.toml"
    # Known identifiers let the fuzzer reach past the 404s into the handlers.
    config.write_text(f'[parameters]\njob_id = "{job_id}"\nsample_id = "row-000000"\n')
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(config),
        "run",
        f"{full_stack.api_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {full_stack.mint_token('fuzzer')}",
        "--checks",
        "all",
        # An opaque cursor or a missing dataset file is invalid in ways a schema cannot say.
        "--exclude-checks",
        "positive_data_acceptance",
        "--max-examples",
        "100",
        "--seed",
        "1",
        "--exclude-path",
        "/v1/jobs/{job_id}/stream",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    generated = int(re.search(r"(\d+) generated", output).group(1))
    assert generated >= 1000, output[-3000:]
