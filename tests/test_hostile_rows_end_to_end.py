"""End to end on the real stack: a dataset row with a 1.2 MB completion and a validator with a catastrophic pattern.

The job completes with the huge ground truth cut and flagged (its events within the broker's message size), its
validator's pattern checks every answer, and another user's job submitted after it runs too: nothing jams the
trainer. The model learns to answer with a JSON string of 14 words and a question mark, so the pattern really runs on
it: `^(\\w+\\s?)+$` backtracks for ever there in Python's re (42 characters of it take 40 s), in linear time in RE2.
"""

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_end_to_end import all_predictions
from tiny_model import TINY_MODEL_ID
from transformers import AutoTokenizer
from uploads import chat_rows, upload

pytestmark = pytest.mark.stack

JOB_TIMEOUT_S = 300
HUGE_ANSWER = "a" * 1_000_000 + "!"  # huge, yet under the shared stack's 1 MiB row budget (conftest.py): accepted
WORDS = "the capital of France is Paris plus minus times equals question answer hello world"  # the tiny corpus's
ANSWER = json.dumps(WORDS + "?")  # a JSON string: it reaches the schema, whose pattern fails on the "?" at its end
CATASTROPHIC = {"type": "string", "pattern": r"^(\w+\s?)+$"}


def headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def hostile_rows() -> bytes:
    """The huge row, then 16 questions that all have `ANSWER` for answer (learnt within two epochs)."""
    rows = [[{"role": "user", "content": "Say a lot of a's."}, {"role": "assistant", "content": HUGE_ANSWER}]]
    rows += [
        [{"role": "user", "content": f"What is {i} plus {i}?"}, {"role": "assistant", "content": ANSWER}]
        for i in range(16)
    ]
    return "".join(json.dumps({"messages": messages}) + "\n" for messages in rows).encode()


def config(dataset_id: str, **predictions: Any) -> dict[str, Any]:
    return {
        "model": TINY_MODEL_ID,
        "dataset_id": dataset_id,
        "num_epochs": 1,
        "batch_size": 4,
        "max_length": 64,
        "predictions": {"enabled": True, "sample_count": 4, "max_new_tokens": 4} | predictions,
    }


def learning_config(dataset_id: str, answer_tokens: int, **predictions: Any) -> dict[str, Any]:
    """Three epochs a step per row at a high rate: the answers of the last rounds are `ANSWER`, and exactly
    (generation stops after its tokens: the tiny model does not end its turn)."""
    body = config(dataset_id, sample_count=17, max_new_tokens=answer_tokens, **predictions)
    return body | {"num_epochs": 3, "batch_size": 1, "learning_rate": 1e-2}


async def run_job(client: httpx.AsyncClient, token: str, body: dict[str, Any]) -> dict[str, Any]:
    created = await client.post("/v1/jobs", json=body, headers=headers(token))
    assert created.status_code == 201, created.text
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while (job := (await client.get(f"/v1/jobs/{created.json()['job_id']}", headers=headers(token))).json())[
        "status"
    ] not in ("completed", "failed", "cancelled"):
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.5)
    return job


async def test_a_huge_row_and_a_catastrophic_pattern_neither_jam_the_trainer_nor_the_next_users_job(
    full_stack: Any, tiny_model_dir: Path
) -> None:
    hostile, next_user = f"hostile-{uuid.uuid4()}", f"next-{uuid.uuid4()}"
    token = full_stack.mint_token(hostile)
    answer_tokens = len(AutoTokenizer.from_pretrained(tiny_model_dir)(ANSWER, add_special_tokens=False)["input_ids"])
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=60) as client:
        dataset = await upload(client, token, "hostile.jsonl", hostile_rows())
        assert dataset["usable_rows"] == 17
        validators = [{"kind": "json_schema", "json_schema": CATASTROPHIC}]
        job = await run_job(client, token, learning_config(dataset["dataset_id"], answer_tokens, validators=validators))
        assert job["status"] == "completed", job
        rows = await all_predictions(client, job["job_id"], token)
        huge = [row for row in rows if row["sample_id"] == "row-000000"]
        assert huge and all("ground_truth" in row["truncated"] for row in huge)
        assert all(len(row["ground_truth"].encode()) <= 64 * 1024 for row in huge)
        assert all(row["valid"] is False for row in rows)
        # The precondition: the last round's answers are the JSON string, so the pattern ran on its 84 characters.
        last = [row for row in rows if row["round_index"] == max(r["round_index"] for r in rows)]
        learnt = [row for row in last if row["prediction"] == ANSWER]
        assert len(learnt) >= 16, [row["prediction"] for row in last]
        assert all(row["validation_error"].startswith("does not match the JSON Schema") for row in learnt)

        next_token = full_stack.mint_token(next_user)
        other = await upload(client, next_token, "train.jsonl", chat_rows())
        assert (await run_job(client, next_token, config(other["dataset_id"])))["status"] == "completed"
