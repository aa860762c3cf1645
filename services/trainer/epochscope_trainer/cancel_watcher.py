"""Which jobs users have cancelled, as seen on the start topic."""

from pydantic import ValidationError

from epochscope_schemas.events import JobCancelEvent, parse_event
from epochscope_trainer.kafka_ports import RecordStream


class CancelWatcher:
    """Reads every cancel event on the start topic, from the beginning, outside any group.

    Cancels travel on the same topic as starts; the group consumer is busy with the running job, so a
    group-less reader is what sees a cancel while the job runs, on whichever trainer runs it.
    """

    def __init__(self, records: RecordStream) -> None:
        self._records = records
        self.cancelled: set[str] = set()

    async def run(self) -> None:
        await self._records.start()
        try:
            async for record in self._records:
                try:
                    event = parse_event(record.value or b"")
                except ValidationError:
                    continue  # the group consumer dead-letters it
                if isinstance(event, JobCancelEvent):
                    self.cancelled.add(str(event.job_id))
        finally:
            await self._records.stop()
