"""The writer's Kafka adapter under a rebalance that lands mid-call, with aiokafka's consumer replaced by a fake.

CI once caught a writer that crashed here: rewinding a discarded batch, it asked the broker for a committed
offset, a rebalance took the partition away during that await, and the seek that followed raised
IllegalStateError. The fake below takes the partition away at the same point, every time.
"""

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError
from start_keys import TRAINER_IDENTITY_PUBLIC
from writer_fakes import SECRET, FakeRecord

from epochscope_schemas.topics import TRAINING_PREDICTIONS
from epochscope_writer.adapters.kafka import KafkaBroker
from epochscope_writer.metrics import WriterMetrics
from epochscope_writer.settings import WriterSettings

KEPT = TopicPartition(TRAINING_PREDICTIONS, 1)
TAKEN = TopicPartition(TRAINING_PREDICTIONS, 2)
NEVER_OURS = TopicPartition(TRAINING_PREDICTIONS, 3)


class RebalancingConsumer:
    """Owns KEPT and TAKEN; while the committed offset of TAKEN is being fetched, a rebalance takes TAKEN away."""

    def __init__(self) -> None:
        self.assigned = {KEPT, TAKEN}
        self.seeks: dict[TopicPartition, int] = {}
        self.asked: list[TopicPartition] = []

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    async def committed(self, tp: TopicPartition) -> int:
        self.asked.append(tp)
        if tp == TAKEN:
            self.assigned.discard(TAKEN)
        return 40

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if tp not in self.assigned:
            raise IllegalStateError(f"No current assignment for partition {tp}")
        self.seeks[tp] = offset


@pytest.fixture
async def broker() -> KafkaBroker:
    """aiokafka's clients are built inside a running loop."""
    settings = WriterSettings(job_token_secret=SECRET, accepted_trainer_keys=TRAINER_IDENTITY_PUBLIC)
    return KafkaBroker(settings, WriterMetrics())


def record(tp: TopicPartition, offset: int) -> FakeRecord:
    return FakeRecord(tp.topic, tp.partition, offset, b"key", b"value")


async def test_rewind_seeks_what_is_still_ours_and_leaves_what_a_rebalance_took(
    broker: KafkaBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = RebalancingConsumer()
    monkeypatch.setattr(broker, "_consumer", consumer)
    records = [record(tp, offset) for tp in (KEPT, TAKEN, NEVER_OURS) for offset in (41, 42)]

    await broker.rewind(records)

    assert consumer.seeks == {KEPT: 40}
    assert NEVER_OURS not in consumer.asked  # not ours to begin with: the broker is not even asked
