"""Status events the service itself publishes for a job: when its child never started or crashed, and warnings of
what the service refused the child (a checkpoint past the job's byte allowance).

The child publishes everything else about the job; these are the cases where no child is left to, or where the
service does not take the child's word.
"""

from typing import Any

from epochscope_schemas.events import Envelope, JobStartEvent, JobStatus, JobStatusEvent, WarningEvent
from epochscope_schemas.topics import TRAINING_STATUS
from epochscope_trainer.service.kafka_ports import EventProducer


class StatusPublisher:
    def __init__(self, producer: EventProducer) -> None:
        self._producer = producer

    async def publish(self, event: JobStartEvent, status: JobStatus, message: str) -> None:
        await self._send(JobStatusEvent(**_envelope(event), status=status, message=message))

    async def warn(self, event: JobStartEvent, code: str, message: str) -> None:
        await self._send(WarningEvent(**_envelope(event), code=code, message=message[:2000]))

    async def _send(self, job_event: Envelope) -> None:
        await self._producer.send_and_wait(
            TRAINING_STATUS, job_event.model_dump_json().encode(), key=str(job_event.job_id).encode()
        )


def _envelope(event: JobStartEvent) -> dict[str, Any]:
    """Whom a service's event speaks for: the start's job, token and attempt."""
    return {"job_id": event.job_id, "job_token": event.job_token, "attempt_id": event.attempt_id}
