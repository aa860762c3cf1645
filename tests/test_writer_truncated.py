"""The writer stores a prediction's `truncated` flag and the API's prediction rows return it; and every column of a
prediction as the contract's event of the same values is stored."""

import json
from datetime import datetime, timedelta, timezone

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
from epochscope_schemas.events import PredictionScores
from epochscope_schemas.graders import Grade
from epochscope_writer.adapters.postgres_tables import PREDICTIONS_TABLE

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


async def test_every_column_of_a_prediction_is_stored_as_its_contract_event_would_be(
    stack: Stack, producer: AIOKafkaProducer
) -> None:
    """The writer inserts predictions from the msgspec Structs it decoded (its time as text, its grades encoded by
    msgspec); the contract's event of the same values, inserted with the table's own column types, gives the same
    row."""
    job, twin = await create_job(stack, "tess"), await create_job(stack, "tess")
    texts = {"prompt": 'a "quote", a \\ back\\slash, a tab\t, a line\n, é, 漢字, 🙂, \x01', "ground_truth": "ü" * 300}
    event = prediction(
        job,
        step=3,
        sample=1,
        latency_ms=1e-7,
        tokens_generated=2**31 - 1,
        valid=False,
        validation_error="not valid JSON: 'x'",
        scores=PredictionScores(exact_match=1.0, f1=1 / 3, rouge_l=5e-324),
        grades={"json_parse": Grade(score=0.0, passed=False, error="é\n"), "x": Grade(score=1, passed=True)},
        truncated=["prompt", "prediction"],
        occurred_at=datetime(2026, 1, 2, 3, 4, 5, 678901, timezone(timedelta(hours=-5, minutes=-30))),
    ).model_copy(update={**texts, "epoch": 0.1 + 0.2})
    await publish_events(producer, [event])

    async def stored() -> bool:
        return (await count_rows(stack, job.job_id))[0] == 1

    await wait_for(stored, timeout=20)
    conn = await asyncpg.connect(stack.admin_dsn)
    try:
        twin_event = event.model_copy(update={"job_id": twin.job_id})
        names = [column.name for column in PREDICTIONS_TABLE.columns]
        values = ", ".join(f"${i}" for i in range(1, len(names) + 1))
        insert = f"INSERT INTO training_predictions ({', '.join(names)}) VALUES ({values})"
        await conn.execute(insert, *PREDICTIONS_TABLE.row(twin_event, "tess"))
        await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
        rows = await conn.fetch("SELECT * FROM training_predictions WHERE job_id = ANY($1)", [job.job_id, twin.job_id])
    finally:
        await conn.close()
    by_job = {row["job_id"]: {k: v for k, v in row.items() if k not in ("job_id", "seq", "created_at")} for row in rows}
    assert by_job[job.job_id] == by_job[twin.job_id]
    assert by_job[job.job_id]["rouge_l"] == 5e-324 and by_job[job.job_id]["prompt"] == texts["prompt"]
