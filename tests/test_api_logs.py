"""The API's logs on the real local stack: each record made while serving a request carries its id, and
no credential reaches the log, not even a user's token sent in the live stream's query string."""

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_rows import auth

pytestmark = pytest.mark.stack


async def records_containing(log: Path, text: str) -> list[dict[str, Any]]:
    """The api.log records that contain `text`, waiting up to 5 s for them to be written."""
    for _ in range(50):
        records = [json.loads(line) for line in log.read_text().splitlines() if text in line]
        if records:
            return records
        await asyncio.sleep(0.1)
    return []


async def test_request_ids_reach_the_structured_logs(full_stack: Any) -> None:
    request_id = uuid.uuid4().hex
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        response = await client.get("/v1/jobs", headers=auth(full_stack, "logger") | {"X-Request-ID": request_id})
    assert response.headers["X-Request-ID"] == request_id
    records = await records_containing(full_stack.logs / "api.log", request_id)
    assert any(r["logger"] == "uvicorn.access" and r["correlation_id"] == request_id for r in records), records


async def test_a_credential_in_the_stream_query_string_never_reaches_the_log(full_stack: Any) -> None:
    """The stream's ?ticket= (and a bearer token a client puts in the query string by mistake) is redacted."""
    token = full_stack.mint_token("log-reader")
    job_id = uuid.uuid4()
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        response = await client.get(f"/v1/jobs/{job_id}/stream", params={"ticket": token, "access_token": token})
    assert response.status_code == 401  # a bearer token is no ticket
    log = full_stack.logs / "api.log"
    records = await records_containing(log, f"/v1/jobs/{job_id}/stream")
    assert any("ticket=[REDACTED]" in r["message"] and "access_token=[REDACTED]" in r["message"] for r in records)
    assert token not in log.read_text()
    assert token.split(".")[2] not in log.read_text()  # not even the signature alone
