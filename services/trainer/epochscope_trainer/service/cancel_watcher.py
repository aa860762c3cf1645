"""Which jobs users have cancelled and which attempts the dispatcher has fenced, as seen on the start topic, and
which cancels are genuine.

A cancel is obeyed only when its signature verifies against the token of the job's start event this trainer
holds (`epochscope_runtime.command_signing`): any client of the broker can publish to the topic, but only the
API and the job's trainer know the job's token. A cancel with an attempt id stops that attempt only: the job's
next attempt, here or on another trainer, runs.
"""

from collections import OrderedDict
from uuid import UUID

from pydantic import ValidationError

from epochscope_runtime.command_signing import verify_command
from epochscope_schemas.events import JobCancelEvent, JobStartEvent, parse_event
from epochscope_trainer.child_protocol import USER_CANCEL
from epochscope_trainer.service.kafka_ports import RecordStream

MAX_JOBS = 10_000  # start events remembered, jobs with cancels waiting for their start event, and fenced attempts
FENCED = "attempt fenced: the dispatcher sent the job again"
MAX_PENDING_PER_JOB = 16  # unverified cancels kept for a job not started here yet


class CancelWatcher:
    """Reads every cancel event on the start topic, from the beginning, outside any group.

    Cancels travel on the same topic as starts; the group consumer is busy with the running job, so a
    group-less reader is what sees a cancel while the job runs, on whichever trainer runs it. A cancel for
    a job this trainer has taken (`track`) is verified at once; one for a job it has not seen yet waits,
    unverified, for that job's start event. Only verified cancels enter `cancelled` (a user's, by job id) or
    `fenced` (the dispatcher's, by attempt id): a start may come after its attempt's cancel, so the fenced
    attempts are remembered (the latest MAX_JOBS).
    """

    def __init__(self, records: RecordStream) -> None:
        self._records = records
        self.cancelled: set[str] = set()
        self.fenced: OrderedDict[UUID, None] = OrderedDict()
        self._tokens: OrderedDict[str, str | None] = OrderedDict()  # job id -> the token of its start event
        self._pending: OrderedDict[str, list[JobCancelEvent]] = OrderedDict()

    async def run(self) -> None:
        await self._records.start()
        try:
            async for record in self._records:
                try:
                    event = parse_event(record.value or b"")
                except ValidationError:
                    continue  # the group consumer dead-letters it
                if isinstance(event, JobCancelEvent):
                    self.see(event)
        finally:
            await self._records.stop()

    def see(self, cancel: JobCancelEvent) -> None:
        """A cancel read from the topic: obeyed if it verifies, kept for its start event if that is not here yet."""
        job_id = str(cancel.job_id)
        if job_id in self._tokens:
            if verify_command(cancel, self._tokens[job_id]):
                self._obey(cancel)
            return  # a forgery: ignored here, dead-lettered by the group consumer
        pending = self._pending.setdefault(job_id, [])
        self._pending.move_to_end(job_id)
        pending.append(cancel)
        del pending[:-MAX_PENDING_PER_JOB]
        _bound(self._pending)

    def track(self, start: JobStartEvent) -> None:
        """The trainer takes this job: remember its token, and verify the cancels that came before it."""
        job_id = str(start.job_id)
        self._tokens[job_id] = start.job_token
        self._tokens.move_to_end(job_id)
        _bound(self._tokens)
        for cancel in self._pending.pop(job_id, []):
            if verify_command(cancel, start.job_token):
                self._obey(cancel)

    def stop_reason(self, start: JobStartEvent) -> str | None:
        """Why this start is not to run (or to run on): its job cancelled by its user, or its attempt fenced."""
        if str(start.job_id) in self.cancelled:
            return USER_CANCEL
        if start.attempt_id is not None and start.attempt_id in self.fenced:
            return FENCED
        return None

    def _obey(self, cancel: JobCancelEvent) -> None:
        if cancel.attempt_id is None:
            self.cancelled.add(str(cancel.job_id))
            return
        self.fenced[cancel.attempt_id] = None
        self.fenced.move_to_end(cancel.attempt_id)
        _bound(self.fenced)

    def refusal(self, cancel: JobCancelEvent) -> str | None:
        """Why this cancel is not to be obeyed (the dead letter's reason), or None when it verifies."""
        job_id = str(cancel.job_id)
        if job_id not in self._tokens:
            return f"cancel_unverifiable: this trainer holds no start event of job {job_id}"
        if not cancel.signature:
            return "cancel_unsigned: no signature"
        if not verify_command(cancel, self._tokens[job_id]):
            return "cancel_forged: the signature does not verify against the job's start event"
        return None


def _bound(entries: OrderedDict) -> None:
    while len(entries) > MAX_JOBS:
        entries.popitem(last=False)
