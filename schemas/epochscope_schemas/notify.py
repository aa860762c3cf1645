"""Postgres LISTEN/NOTIFY contract between the writer (NOTIFY after each commit) and the API's live stream."""

from enum import StrEnum
from uuid import UUID


def job_channel(job_id: UUID) -> str:
    """The channel the writer notifies when a job's predictions or status change (payload: small JSON)."""
    return f"job_{job_id.hex}"


class ChangeKind(StrEnum):
    """What a NOTIFY payload's "kind" says changed, so a watcher re-reads only that."""

    PREDICTIONS = "predictions"
    STATUS = "status"
    ROUND = "round"
    PROGRESS = "progress"
    WARNING = "warning"
    CHECKPOINT = "checkpoint"
    ROLLOUTS = "rollouts"
