"""The writer stores a prediction's `truncated` flag and the API's prediction rows return it."""

import json

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from writer_events import prediction, publish_events
from writer_stack import (
    Stack,
    count_rows,
    create_job,
    producer_fixture,  # noqa: F401  fixture
    stack_fixture,  # noqa: F401  fixture
    wait_for,
    writer_fixture,  # noqa: F401  fixture
)

from epochscope_api.data.predictions import fetch_prediction_page
from epochscope_api.response_models import PredictionPage

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="module")]


async def test_the_truncated_flag_is_stored_and_read_back(stack: Stack, producer: AIOKafkaProducer) -> None:
    job = await create_job(stack, "trudy")
    cut = prediction(job, step=1, sample=1, truncated=["ground_truth", "prediction"])
    await publish_events(producer, [cut, prediction(job, step=1, sample=2)])

    async def both_stored() -> bool:
        return (await count_rows(stack, job.job_id))[0] == 2

    await wait_for(both_stored, timeout=20)
    conn = await asyncpg.connect(stack.admin_dsn)
    try:
        await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
        body = await fetch_prediction_page(conn, job.job_id, None, None, 10, None, max_bytes=1 << 22)
        page = PredictionPage.model_validate_json(body)  # Postgres's JSON is the response model's
        assert json.loads(body) == json.loads(page.model_dump_json())  # written as pydantic writes it (times too)
    finally:
        await conn.close()
    assert [(p.sample_id, p.truncated) for p in page.items] == [("s1", ["ground_truth", "prediction"]), ("s2", [])]
