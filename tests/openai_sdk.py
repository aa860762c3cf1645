"""The official `openai` SDK pointed at a stack's OpenAI-compatible surface, and what the stack tests share."""

import time
from typing import Any

import httpx
from openai import OpenAI
from openai.types.fine_tuning import FineTuningJob

JOB_TIMEOUT_S = 300
FINAL = ("succeeded", "failed", "cancelled")


def sdk(stack: Any, user: str) -> OpenAI:
    """A client as a user writes it: the base URL and an Epochscope user token as the API key; no retries, so a
    refusal surfaces at once."""
    return OpenAI(base_url=f"{stack.api_url}/openai/v1", api_key=stack.mint_token(user), max_retries=0)


def epochscope(stack: Any, user: str) -> httpx.Client:
    """Epochscope's own API for the same user, to check that both surfaces show the same resources."""
    return httpx.Client(
        base_url=stack.api_url, headers={"Authorization": f"Bearer {stack.mint_token(user)}"}, timeout=30
    )


def wait_until(client: OpenAI, job_id: str, statuses: tuple[str, ...] = FINAL) -> FineTuningJob:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses:
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} not {statuses} in {JOB_TIMEOUT_S}s")
