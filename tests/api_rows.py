"""Helpers of the API integration tests: rows inserted straight into Postgres as the administrator (each
followed by the writer's NOTIFY, so no trainer is involved), users' headers, and an SSE stream reader."""

import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from httpx_sse import aconnect_sse

from epochscope_schemas.notify import job_channel


@pytest.fixture(name="admin")
async def admin_fixture(full_stack: Any) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(full_stack.postgres.admin_url)
    yield conn
    await conn.close()


async def insert_job(
    admin: asyncpg.Connection, owner: str, status: str = "running", config: dict[str, Any] | None = None
) -> uuid.UUID:
    """A job row in `status`; with no `config`, one naming no dataset that exists, so no trainer runs it."""
    job_id = uuid.uuid4()
    config = config or {"model": "tiny", "dataset_id": str(uuid.uuid4())}
    await admin.execute(
        "INSERT INTO jobs (job_id, owner_id, config, status, token_expires_at) VALUES ($1, $2, $3, $4, $5)",
        job_id,
        owner,
        json.dumps(config),
        status,
        datetime.now(UTC) + timedelta(hours=1),
    )
    return job_id


async def notify(admin: asyncpg.Connection, job_id: uuid.UUID, kind: str) -> None:
    await admin.execute("SELECT pg_notify($1, $2)", job_channel(job_id), json.dumps({"kind": kind}))


async def insert_round(admin: asyncpg.Connection, job_id: uuid.UUID, owner: str, step: int, samples: int = 3) -> None:
    """One round's predictions (every other one valid, each scored), committed and announced as the writer does."""
    async with admin.transaction():
        await admin.executemany(
            "INSERT INTO training_predictions (job_id, step, sample_id, owner_id, round_index, epoch, sample_index,"
            " prompt, ground_truth, prediction, tokens_generated, valid, validation_error, exact_match, f1, rouge_l,"
            " event_id, occurred_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, 'p', 'g', $8, 4, $9, $10, $11, 0.5, 0.25, $12, now())",
            [
                (
                    job_id,
                    step,
                    f"row-{i:06d}",
                    owner,
                    step,
                    float(step),
                    i,
                    f"answer {step}/{i}",
                    i % 2 == 0,
                    None if i % 2 == 0 else "not JSON",
                    float(i == 0),
                    uuid.uuid4(),
                )
                for i in range(samples)
            ],
        )
        await notify(admin, job_id, "predictions")


async def insert_summary(admin: asyncpg.Connection, job_id: uuid.UUID, owner: str, round_index: int) -> None:
    """The trainer's summary of a round (it disagrees with the stored rows on purpose: it wins)."""
    await admin.execute(
        "INSERT INTO job_rounds (job_id, round_index, owner_id, epoch, step, trigger, predictions, validated, valid,"
        " scored, mean_exact_match, mean_f1, mean_rouge_l, tokens_generated, wall_ms, stall_ms, occurred_at)"
        " VALUES ($1, $2::int, $3, $2::int::float8, $2::int, 'epoch', 8, 8, 6, 8, 0.125, 0.5, 0.25, 64, 1500, 1400,"
        " now())",
        job_id,
        round_index,
        owner,
    )
    await notify(admin, job_id, "round")


async def insert_progress(admin: asyncpg.Connection, job_id: uuid.UUID, owner: str, steps: range) -> None:
    """Progress history and the job's latest progress, as the writer stores them."""
    async with admin.transaction():
        await admin.executemany(
            "INSERT INTO job_progress (job_id, step, owner_id, max_steps, epoch, loss, learning_rate,"
            " samples_per_second, occurred_at) VALUES ($1, $2, $3, 100, $4, $5, 0.001, 12.5, now())",
            [(job_id, step, owner, step / 50, 2.0 / (step + 1)) for step in steps],
        )
        latest = {
            "step": steps[-1],
            "max_steps": 100,
            "epoch": steps[-1] / 50,
            "num_epochs": 2,
            "loss": 2.0 / (steps[-1] + 1),
            "learning_rate": 0.001,
            "samples_per_second": 12.5,
            "occurred_at": datetime.now(UTC).isoformat(),
        }
        await admin.execute("UPDATE jobs SET progress = $2::jsonb WHERE job_id = $1", job_id, json.dumps(latest))
        await notify(admin, job_id, "progress")


async def insert_warning(admin: asyncpg.Connection, job_id: uuid.UUID, owner: str, code: str) -> None:
    await admin.execute(
        "INSERT INTO job_warnings (event_id, job_id, owner_id, code, message, occurred_at)"
        " VALUES ($1, $2, $3, $4, 'something to know', now())",
        uuid.uuid4(),
        job_id,
        owner,
        code,
    )
    await notify(admin, job_id, "warning")


def auth(full_stack: Any, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {full_stack.mint_token(user)}"}


DATA_EVENTS = ("prediction", "round", "progress", "warning", "rollout")


async def read_stream(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], stop_at: Counter[str] | None
) -> tuple[list[dict[str, Any]], str | None]:
    """(events, id of the last data event) until `end`, or until the data events counted reach `stop_at`."""
    events: list[dict[str, Any]] = []
    seen: Counter[str] = Counter()
    last_id = headers.get("Last-Event-ID")
    async with aconnect_sse(client, "GET", url, headers=headers) as source:
        async for sse in source.aiter_sse():
            events.append({"event": sse.event, "data": sse.data})
            if sse.event in DATA_EVENTS:
                last_id = sse.id
                seen[sse.event] += 1
            if sse.event == "end" or (stop_at and seen >= stop_at):
                break
    return events, last_id


def delivered(events: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Each data event's natural key, by event name."""
    keys: dict[str, Callable[[dict[str, Any]], Any]] = {
        "prediction": lambda row: (row["step"], row["sample_id"]),
        "round": lambda row: row["round_index"],
        "progress": lambda row: row["step"],
        "warning": lambda row: row["code"],
    }
    found: dict[str, list[Any]] = {name: [] for name in keys}
    for event in events:
        if event["event"] in keys:
            found[event["event"]].append(keys[event["event"]](json.loads(event["data"])))
    return found
