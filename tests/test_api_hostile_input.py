"""Hostile bytes get a clear 4xx naming the problem, never a 500: lone surrogates, deep nesting, invalid UTF-8."""

import json
import uuid
from typing import Any

import httpx
import pytest
from tiny_model import TINY_MODEL_ID
from uploads import chat_rows, upload

pytestmark = pytest.mark.stack


def headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "content-type": "application/json"}


@pytest.fixture(scope="module")
async def client_and_token(full_stack: Any) -> Any:
    token = full_stack.mint_token(f"hostile-{uuid.uuid4()}")
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        dataset = await upload(client, token, "train.jsonl", chat_rows())
        yield client, token, dataset["dataset_id"]


def job_text(dataset_id: str, model: str) -> str:
    return '{"model": "%s", "dataset_id": "%s"}' % (model, dataset_id)  # noqa: UP031 (raw JSON escapes)


async def test_a_lone_surrogate_in_a_string_field_is_a_422_naming_the_field(client_and_token: Any) -> None:
    client, token, dataset_id = client_and_token
    response = await client.post("/v1/jobs", content=job_text(dataset_id, "\\ud800"), headers=headers(token))
    assert response.status_code == 422, response.text
    assert ["body", "model"] in [error["loc"] for error in response.json()["detail"]]


async def test_json_nested_5000_deep_is_a_client_error_not_a_500(client_and_token: Any) -> None:
    client, token, dataset_id = client_and_token
    deep = "[" * 5000 + "]" * 5000
    body = '{"model": "%s", "dataset_id": "%s", "lora": %s}' % (TINY_MODEL_ID, dataset_id, deep)  # noqa: UP031
    response = await client.post("/v1/jobs", content=body, headers=headers(token))
    assert response.status_code in (400, 422), response.text
    assert "Traceback" not in response.text


async def test_invalid_utf8_in_a_body_is_a_400_naming_the_problem(client_and_token: Any) -> None:
    client, token, dataset_id = client_and_token
    body = job_text(dataset_id, TINY_MODEL_ID).encode().replace(b'"dataset_id"', b'"\xff\xfe"')
    response = await client.post("/v1/jobs", content=body, headers=headers(token))
    assert response.status_code == 400, response.text
    assert response.json() == {"detail": "the request body is not valid UTF-8: invalid start byte at byte 19"}


async def test_invalid_utf8_in_an_uploaded_file_is_reported_never_a_500(client_and_token: Any) -> None:
    client, token, _ = client_and_token
    mixed = chat_rows(2) + b'{"text": "\xff\xfe broken"}\n'
    report = (await upload(client, token, "mixed.jsonl", mixed))["report"]
    assert report["malformed_by_reason"] == {"not valid UTF-8": 1}
    assert report["malformed_examples"] == [{"line": 3, "reason": "not valid UTF-8"}]
    for name, content in (("all-bad.jsonl", b"\xff\xfe\n\xc3\x28\n"), ("bad.csv", b"text\n\xff\xfe\n")):
        response = await client.post(
            "/v1/datasets", files={"file": (name, content)}, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 422, response.text
        assert "UTF-8" in response.json()["detail"], response.text
    assert json.loads(mixed.splitlines()[0])["messages"]
