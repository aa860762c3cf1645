"""What the service layer needs from the outside world: adapters/ implement it, the unit tests fake it."""

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from epochscope_schemas.events import (
    CheckpointDeletedEvent,
    Envelope,
    JobStatus,
    JobStatusEvent,
    ProgressEvent,
)
from epochscope_schemas.scheduling import TrainerHeartbeat
from epochscope_writer.domain.dead_letters import DeadLetter
from epochscope_writer.domain.prediction_struct import PredictionStruct
from epochscope_writer.domain.records import KafkaRecord

Notification = tuple[UUID, dict[str, object]]  # (job, NOTIFY payload)


class Unavailable(Exception):
    """The database or the broker could not complete the batch; retry it later, unchanged."""


class DatabaseUnavailable(Unavailable):
    pass


class BrokerUnavailable(Unavailable):
    pass


class RefusedInput(Exception):
    """The database refused this input (a constraint, a bad value, row-level security): a retry would not help."""


@dataclass(frozen=True)
class JobState:
    """A job row as the writer sees it: that it exists is what matters; its status is never a reason to refuse."""

    status: JobStatus
    # The current dispatch its trainer events must name; None outside the queue, while queued again, or once the API
    # ended it: then only events naming no attempt are taken.
    attempt_id: UUID | None = None


@dataclass(frozen=True)
class NewPrediction:
    job_id: UUID
    step: int
    seq: int


class EventStore(Protocol):
    """The writes of one database transaction. Every insert is idempotent and returns what was new."""

    async def job_owner(self, job_id: UUID) -> str | None: ...

    async def act_as(self, owner: str) -> None: ...

    async def job_states(self, job_ids: list[UUID]) -> dict[UUID, JobState]:
        """The acting owner's jobs among `job_ids` that still exist, locked against deletion until the commit."""

    async def insert_predictions(self, owner: str, events: list[PredictionStruct]) -> list[NewPrediction]: ...

    async def prediction_bytes(self, owner: str) -> int:
        """The bytes of the owner's stored prediction texts, this transaction's inserts included; the owner's count is
        locked by those inserts until the commit, so another writer storing theirs waits and then counts them."""

    async def insert_rows(self, owner: str, events: list[Envelope]) -> list[UUID]:
        """Events of one class into their table, a row each, idempotent on its natural key: the job of each new row."""

    async def insert_progress(self, owner: str, events: list[ProgressEvent]) -> list[UUID]: ...

    async def delete_checkpoints(self, owner: str, events: list[CheckpointDeletedEvent]) -> list[UUID]: ...

    async def apply_statuses(self, events: list[JobStatusEvent]) -> list[JobStatusEvent]:
        """In order: each job's status by its attempts, never by the events' clocks (a later attempt's status wins,
        a final one is never left), and each attempt moved in the job queue. The events that changed their job."""

    async def notify(self, notifications: list[Notification]) -> None: ...

    def savepoint(self) -> AbstractAsyncContextManager[None]:
        """Undo only what ran inside it if it fails; raises RefusedInput when the input was the problem."""


class Database(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[EventStore]:
        """Commits on a clean exit; raises RefusedInput, or DatabaseUnavailable after dropping the connection."""

    async def probe(self) -> None:
        """Connect if not connected; raises DatabaseUnavailable."""

    async def close(self) -> None: ...


class Broker(Protocol):
    async def start(self, on_revoked: Callable[[], Awaitable[None]], on_assigned: Callable[[list[str]], None]) -> None:
        """Join the group; on each rebalance await `on_revoked`, then call `on_assigned` with "topic:partition"s."""

    async def stop(self) -> None: ...

    async def fetch(self, size: int, linger_ms: int, is_stopping: Callable[[], bool]) -> list[KafkaRecord]:
        """Up to `size` records, waiting at most `linger_ms` for more once the first have arrived."""

    async def publish_dead_letters(self, dead_letters: list[DeadLetter]) -> None:
        """Acknowledged by the broker on return; raises BrokerUnavailable."""

    async def commit(self, records: list[KafkaRecord]) -> None:
        """Commit the offsets past `records` on the partitions still ours; a failure only means redelivery."""

    def resume(self) -> None:
        """Consume again from the partitions `wait_paused` paused."""

    async def wait_paused(self, seconds: float, is_stopping: Callable[[], bool]) -> None:
        """Stop consuming but keep polling, so the group does not evict this writer while it waits."""

    async def rewind(self, records: list[KafkaRecord]) -> None:
        """Go back to the committed offsets of the partitions of `records` still ours."""


class HeartbeatBroker(Protocol):
    """The trainers' heartbeats topic, and where refused heartbeats go. Raises BrokerUnavailable."""

    async def start(self) -> None: ...

    async def stop(self) -> None:
        """Never raises; `start` may be called again after it."""

    async def fetch(self) -> list[KafkaRecord]: ...

    async def publish_dead_letters(self, dead_letters: list[DeadLetter]) -> None: ...


class TrainerRoster(Protocol):
    """The `trainers` table the API's dispatcher reads. Raises DatabaseUnavailable."""

    async def record(self, beats: list[TrainerHeartbeat]) -> None:
        """Each trainer's beat, unless a newer one is recorded; wakes the dispatcher when one has a free slot."""

    async def close(self) -> None: ...
