"""Uploads that decode to far more than they weigh, through the real API: a Parquet bomb under 1 KiB, a JSONL and a
CSV line longer than a row's budget. Each is a quick 422 naming the row and the setting, nothing is kept, and the
API process's peak memory (VmHWM) grows by a few MiB at most: the scan runs in a child process."""

import time
import uuid
from typing import Any

import httpx
import pytest
from conftest import DATASET_FILE_MAX_DECODED_BYTES, DATASET_ROW_MAX_BYTES
from test_dataset_budgets import parquet_bomb
from uploads import upload

pytestmark = pytest.mark.stack

MiB = 1 << 20


def memory(pid: int, field: str) -> int:
    """VmRSS (resident now) or VmHWM (peak resident) of the process, in bytes."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith(f"{field}:"))
    return int(line.split()[1]) * 1024


def restart_peak(pid: int) -> int:
    """The process's resident memory now, from which its peak (VmHWM) starts again."""
    before = memory(pid, "VmRSS")
    with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as clear:
        clear.write("5")
    return before


LONG = "a" * (DATASET_ROW_MAX_BYTES + 256 * 1024)
CASES = {
    "bomb.parquet": (parquet_bomb(64 << 10, 16384), "EPOCHSCOPE_DATASET_FILE_MAX_DECODED_BYTES"),  # 1 GiB decoded
    "long.jsonl": (('{"text": "t"}\n{"text": "' + LONG + '"}\n').encode(), "EPOCHSCOPE_DATASET_ROW_MAX_BYTES"),
    "long.csv": (('text\nt\n"' + LONG + '"\n').encode(), "EPOCHSCOPE_DATASET_ROW_MAX_BYTES"),
}


@pytest.mark.parametrize("filename", list(CASES))
async def test_an_upload_past_a_decoded_budget_is_a_quick_422_and_the_api_barely_grows(
    full_stack: Any, filename: str
) -> None:
    content, setting = CASES[filename]
    assert DATASET_FILE_MAX_DECODED_BYTES < 1 << 30
    token = full_stack.mint_token(f"budgets-{uuid.uuid4()}")
    api_pid = full_stack.service("api").process.pid
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=60) as client:
        await upload(client, token, "warm.jsonl", b'{"text": "t"}\n')  # the scan's forkserver is started
        before = restart_peak(api_pid)
        started = time.monotonic()
        response = await client.post(
            "/v1/datasets",
            files={"file": (filename, content, "application/octet-stream")},
            headers={"Authorization": f"Bearer {token}"},
        )
        seconds = time.monotonic() - started
        listed = await client.get("/v1/datasets", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert setting in detail and "row " in detail, detail
    assert seconds < 10, seconds
    assert memory(api_pid, "VmHWM") - before < 16 * MiB
    assert [d["filename"] for d in listed.json()["items"]] == ["warm.jsonl"]
