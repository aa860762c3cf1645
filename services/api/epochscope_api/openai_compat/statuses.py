"""Epochscope's job statuses as OpenAI's. Epochscope validates a job's files when it is submitted, so a job is never
seen `validating_files`: it is `queued` from the start."""

from typing import Literal

from epochscope_schemas.events import JobStatus

OpenAIStatus = Literal["validating_files", "queued", "running", "succeeded", "failed", "cancelled"]

OPENAI_STATUS: dict[JobStatus, OpenAIStatus] = {
    JobStatus.QUEUED: "queued",
    JobStatus.RUNNING: "running",
    JobStatus.COMPLETED: "succeeded",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
}
