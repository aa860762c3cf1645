"""Datasets for the stack tests: files written here, uploaded through the real API (POST /v1/datasets)."""

import json
from pathlib import Path
from typing import Any

import httpx


def chat_rows(rows: int = 8) -> bytes:
    """`rows` chat examples: a question and its one-line answer."""
    lines = [
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"What is {i} plus {i}?"},
                    {"role": "assistant", "content": f"{i + i}"},
                ]
            }
        )
        for i in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


def write_dataset(path: Path, rows: int = 8) -> Path:
    path.write_bytes(chat_rows(rows))
    return path


async def upload(client: httpx.AsyncClient, token: str, filename: str, content: bytes) -> dict[str, Any]:
    """The dataset the API made of `content` (asserting a 201)."""
    response = await client.post(
        "/v1/datasets",
        files={"file": (filename, content, "application/octet-stream")},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.text
    return response.json()
