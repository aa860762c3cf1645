"""POST /v1/graders/run on the real API (its own stack: Postgres and the broker, no writer, no trainer): real bearer
tokens, the Postgres write limiter, the bounds from the environment, and RE2 on the longest answer allowed."""

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from own_stack import own_stack

from epochscope.local_stack import LocalStack

pytestmark = pytest.mark.stack

MAX_CHARS, WRITES_PER_MINUTE = 20_000, 6


@pytest.fixture(scope="module")
def grader_stack(tiny_model_dir: Path) -> Iterator[LocalStack]:
    env = {
        "EPOCHSCOPE_GRADER_RUN_MAX_CHARS": str(MAX_CHARS),
        "EPOCHSCOPE_QUOTA_WRITES_PER_MINUTE": str(WRITES_PER_MINUTE),
    }
    with own_stack("epochscope-graders-", tiny_model_dir, env, writers=0, trainers=0) as stack:
        yield stack


@pytest.fixture
async def client(grader_stack: LocalStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=grader_stack.api_url, timeout=60) as client:
        yield client


async def test_a_grader_runs_for_a_signed_in_user_within_its_bounds(
    grader_stack: LocalStack, client: httpx.AsyncClient
) -> None:
    token = grader_stack.mint_token(f"graders-{uuid.uuid4()}")

    async def run(body: dict) -> httpx.Response:
        return await client.post("/v1/graders/run", json=body, headers={"Authorization": f"Bearer {token}"})

    body = {
        "grader": {"type": "string_check", "name": "label", "reference_field": "label"},
        "answer": "spam",
        "references": {"ground_truth": "ham", "label": "spam"},
    }
    assert (await run(body)).json() == {"graded": True, "score": 1.0, "passed": True, "reason": None}
    assert (await client.post("/v1/graders/run", json=body)).status_code == 401
    forged = {"Authorization": "Bearer not-a-token"}
    assert (await client.post("/v1/graders/run", json=body, headers=forged)).status_code == 401

    oversize = await run(body | {"answer": "a" * (MAX_CHARS + 1)})
    assert oversize.status_code == 422
    assert [error["loc"] for error in oversize.json()["detail"]] == [["body", "answer"]]
    unsafe = await run(body | {"grader": {"type": "regex", "name": "r", "pattern": "(?=a)a"}})
    assert unsafe.status_code == 422 and unsafe.json()["detail"][0]["loc"][:3] == ["body", "grader", "regex"]

    catastrophic = body | {
        "grader": {"type": "regex", "name": "r", "pattern": "(a+)+$"},
        "answer": "a" * (MAX_CHARS - 1) + "!",
    }
    started = time.monotonic()
    response = await run(catastrophic)
    assert time.monotonic() - started < 2, "RE2 answers a backtracking pattern in linear time"
    assert (response.status_code, response.json()["passed"]) == (200, False)

    codes = [(await run(body)).status_code for _ in range(WRITES_PER_MINUTE)]  # a bucket of writes a minute
    assert 429 in codes and codes[: codes.index(429)] == [200] * codes.index(429)
    limited = await run(body)
    assert limited.status_code == 429 and limited.json()["limit"] == "writes_per_minute"
