"""Status events the service itself publishes for a job: when its child never started or crashed.

The child publishes everything else about the job; these are the cases where no child is left to.
"""

from epochscope_schemas.events import JobStartEvent, JobStatus, JobStatusEvent
from epochscope_schemas.topics import TRAINING_STATUS
from epochscope_trainer.service.kafka_ports import EventProducer


class StatusPublisher:
    def __init__(self, producer: EventProducer) -> None:
        self._producer = producer

    async def publish(self, event: JobStartEvent, status: JobStatus, message: str) -> None:
        status_event = JobStatusEvent(
            job_id=event.job_id, job_token=event.job_token, attempt_id=event.attempt_id, status=status, message=message
        )
        await self._producer.send_and_wait(
            TRAINING_STATUS, status_event.model_dump_json().encode(), key=str(event.job_id).encode()
        )
