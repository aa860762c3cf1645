"""The client generated from the committed spec, used against the real local stack as a user would.

The job is created through the client; its predictions are inserted straight into Postgres as the
administrator, so the test does not depend on a trainer running it.
"""

import json
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from generated_client import api_module, generated_client
from tiny_model import TINY_MODEL_ID
from uploads import upload

from epochscope_schemas.notify import job_channel

pytestmark = pytest.mark.stack

SAMPLES = 3
ROUNDS = 3


async def insert_predictions(admin_url: str, job_id: uuid.UUID, owner: str) -> None:
    rows = [
        (job_id, step, f"s{i}", owner, step, float(step), i, f"prompt {i}", f"truth {i}", f"answer {step}/{i}", i == 0)
        for step in range(ROUNDS)
        for i in range(SAMPLES)
    ]
    conn = await asyncpg.connect(admin_url)
    try:
        async with conn.transaction():
            await conn.executemany(
                "INSERT INTO training_predictions (job_id, step, sample_id, owner_id, round_index, epoch,"
                " sample_index, prompt, ground_truth, prediction, valid, exact_match, f1, rouge_l, event_id,"
                " occurred_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, 0.5, 0.5,"
                " gen_random_uuid(), now())",
                rows,
            )
            await conn.execute("SELECT pg_notify($1, $2)", job_channel(job_id), json.dumps({"kind": "predictions"}))
    finally:
        await conn.close()


async def test_generated_client_creates_a_job_and_reads_its_predictions(full_stack: Any) -> None:
    package = generated_client()
    models = package.models
    client = package.AuthenticatedClient(base_url=full_stack.api_url, token=full_stack.mint_token("client-user"))
    stranger = package.AuthenticatedClient(base_url=full_stack.api_url, token=full_stack.mint_token("stranger"))
    async with httpx.AsyncClient(base_url=full_stack.api_url) as http:
        row = json.dumps({"prompt": "1 + 1 =", "completion": "2"}) + "\n"
        dataset = await upload(http, full_stack.mint_token("client-user"), "train.jsonl", row.encode())
    config = models.JobConfig(
        model=TINY_MODEL_ID,
        dataset_id=dataset["dataset_id"],
        # Disabled: should a trainer start the job before the cancel lands, it predicts nothing beside these rows.
        predictions=models.PredictionsConfig(enabled=False, sample_count=SAMPLES),
    )

    job = await api_module("jobs.create_job").asyncio(client=client, body=config)
    assert isinstance(job, models.Job), job
    assert job.config.predictions.sample_count == SAMPLES
    await api_module("jobs.cancel_job").asyncio(job.job_id, client=client)  # no trainer needs to try it
    await insert_predictions(full_stack.postgres.admin_url, job.job_id, "client-user")

    rows = []
    cursor: Any = package.types.UNSET
    while True:
        page = await api_module("predictions.list_predictions").asyncio(
            job.job_id, client=client, limit=2, cursor=cursor
        )
        assert isinstance(page, models.PredictionPage), page
        rows += page.items
        cursor = page.next_cursor
        if not page.has_more:
            break
    assert [(row.step, row.sample_id) for row in rows] == [(s, f"s{i}") for s in range(ROUNDS) for i in range(SAMPLES)]
    assert all(isinstance(row.scores, models.PredictionScores) and row.scores.f1 == 0.5 for row in rows)
    assert [row.valid for row in rows[:SAMPLES]] == [True, False, False]

    detail = await api_module("jobs.get_job").asyncio(job.job_id, client=client)
    assert isinstance(detail, models.JobDetail), detail
    assert [(r.round_index, r.predictions, r.summarized) for r in detail.rounds] == [
        (index, SAMPLES, False) for index in range(ROUNDS)
    ]
    # No summary arrived: the rows are scored and validated, but the rounds carry no metric until one does.
    assert all(r.mean_f1 is None and r.validator_pass_rate is None and r.graders is None for r in detail.rounds)
    sample = await api_module("predictions.get_sample_history").asyncio(job.job_id, "s0", client=client)
    assert isinstance(sample, models.SampleHistory) and sample.ground_truth == "truth 0"
    assert [r.prediction for r in sample.rounds] == [f"answer {step}/0" for step in range(ROUNDS)]

    hidden = await api_module("jobs.get_job").asyncio_detailed(job.job_id, client=stranger)
    assert hidden.status_code == 404 and isinstance(hidden.parsed, models.ErrorResponse)
