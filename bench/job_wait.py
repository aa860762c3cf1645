"""Shared by the benchmarks that run real jobs: waiting, through the API, for a job to complete."""

import time
from typing import Any

import httpx

FINAL = ("completed", "failed", "cancelled")


def completed_job(client: httpx.Client, job_id: str, timeout_s: float) -> dict[str, Any]:
    """The job once it has ended, polled every second; TimeoutError past `timeout_s`, RuntimeError unless it
    completed."""
    deadline = time.monotonic() + timeout_s
    while (job := client.get(f"/v1/jobs/{job_id}").raise_for_status().json())["status"] not in FINAL:
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} did not end in {timeout_s:.0f}s")
        time.sleep(1)
    if job["status"] != "completed":
        raise RuntimeError(f"job {job_id} {job['status']}: {job['status_message']}")
    return job
