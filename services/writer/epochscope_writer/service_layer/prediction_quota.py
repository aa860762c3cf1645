"""The per-user stored-predictions quota, enforced while a job runs.

The API refuses a job with predictions once its user's stored prediction texts reach EPOCHSCOPE_QUOTA_PREDICTION_BYTES;
a job already running is held to the same figure here, where its predictions are stored. A user's predictions of a
batch are stored in a savepoint, and the user's total is read back (the database counts it: migration 0042); past the
quota, the savepoint is undone, so the batch's predictions of that user are not stored, and the applier dead-letters
them and tells each job with one `predictions_quota` warning. The batch's other kinds of events, and other users'
predictions, are stored as usual; the job goes on (its rounds' scores, progress, checkpoints and statuses still
arrive). Only new rows count: a redelivered batch that was stored adds nothing and is never refused. A batch applied
one event at a time (after the database refused one of its events) checks each prediction alone.
"""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from epochscope_schemas.events import WarningEvent
from epochscope_writer.service_layer.ports import EventStore

SETTING = "EPOCHSCOPE_QUOTA_PREDICTION_BYTES"
WARNING_CODE = "predictions_quota"
_WARNING_IDS = uuid.UUID("5b0f8a52-3c3e-4d0e-9a43-7d1f2f6c2a11")  # namespace of each job's one quota warning


class QuotaCrossed(Exception):
    """Storing the predictions would take their owner's stored bytes to `used`, past the quota; nothing was stored."""

    def __init__(self, used: int) -> None:
        super().__init__(f"stored predictions would reach {used} bytes")
        self.used = used


@dataclass(frozen=True)
class PredictionQuota:
    limit: int  # bytes of stored prediction texts per user

    async def store(self, store: EventStore, owner: str, write: Callable[[], Awaitable[list[Any]]]) -> list[Any]:
        """`write`'s new rows, or QuotaCrossed with the write undone when they take `owner` past the quota."""
        async with store.savepoint():
            new = await write()
            if new and (used := await store.prediction_bytes(owner)) > self.limit:
                raise QuotaCrossed(used)
        return new

    def detail(self, crossed: QuotaCrossed) -> str:
        """A refused prediction's dead-letter detail."""
        return (
            f"not stored: the owner's stored predictions would reach {crossed.used} bytes, past the quota of"
            f" {self.limit} bytes ({SETTING})"
        )

    def warnings(self, job_ids: list[UUID]) -> list[WarningEvent]:
        """One warning per job, the same event each time (its id from the job), so a job is told once."""
        message = (
            f"Predictions are not being stored: they would take your stored predictions past the quota of {self.limit}"
            f" bytes ({SETTING}). Training goes on, and each round's scores are still recorded; delete old jobs to"
            " make room for new predictions."
        )
        return [
            WarningEvent(
                event_id=uuid.uuid5(_WARNING_IDS, str(job_id)), job_id=job_id, code=WARNING_CODE, message=message
            )
            for job_id in job_ids
        ]
