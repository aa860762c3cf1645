"""A batch applied in lanes, one transaction per database connection at once (EPOCHSCOPE_WRITER_DB_CONNECTIONS),
against fake adapters: a partition's records stay in one lane and in order, the lanes' transactions are open at the
same time, and a lane that committed is not applied again while another lane's part waits for its database."""

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from test_writer_units import applier, metric, prediction, running, until, writer_for
from writer_fakes import FakeBroker, FakeDatabase, FakeEventStore, FakeRecord, record_of

from epochscope_writer.domain.dead_letters import DeadLetterReason


def on_partition(record: FakeRecord, partition: int) -> FakeRecord:
    return dataclasses.replace(record, partition=partition)


def test_a_batch_splits_by_partition_into_lanes_each_in_its_order() -> None:
    store = FakeEventStore()
    job = store.add_job("alice")
    records = [on_partition(record_of(prediction(job, "alice", 1, i), i), i % 4) for i in range(12)]
    garbled = dataclasses.replace(records[0], partition=3, offset=12, value=b"not json")  # a dead letter
    checked = applier().check([*records, garbled])
    lanes = checked.lanes(2)
    assert sorted(lanes) == [0, 1]
    assert [(r.partition, r.offset) for r in lanes[0].records] == [(i % 4, i) for i in range(12) if i % 2 == 0]
    assert [item.record for item in lanes[1].accepted] == [r for r in records if r.partition in (1, 3)]
    assert [letter.offset for letter in lanes[1].dead_letters] == [12] and not lanes[0].dead_letters
    assert sorted(checked.lanes(8)) == [0, 1, 2, 3]  # a lane without records has no part
    assert checked.lanes(1)[0].records == checked.records


class GatedDatabase(FakeDatabase):
    """Holds each transaction open until every gated database has one open: lanes applied one after the other never
    get past the first."""

    def __init__(self, store: FakeEventStore, gate: list[int], lanes: int) -> None:
        super().__init__(store)
        self.gate, self.lanes = gate, lanes

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[FakeEventStore]:
        self.gate[0] += 1
        async with asyncio.timeout(2):
            while self.gate[0] < self.lanes:
                await asyncio.sleep(0.001)
        async with super().transaction() as store:
            yield store


async def test_the_lanes_transactions_are_open_at_once() -> None:
    store, broker = FakeEventStore(), FakeBroker()
    jobs = [store.add_job("alice"), store.add_job("bob")]
    gate = [0]
    databases = [GatedDatabase(store, gate, 2) for _ in range(2)]
    records = [
        on_partition(record_of(prediction(jobs[p], ("alice", "bob")[p], 1, i), i), p) for i in range(6) for p in (0, 1)
    ]
    broker.deliver(records)
    writer = writer_for(broker, *databases)
    async with running(writer):
        await until(lambda: len(broker.committed) == len(records))
    assert len(store.tables.predictions) == 12
    assert metric(writer, "epochscope_writer_rows_applied_total", kind="prediction") == 12
    assert metric(writer, "epochscope_writer_database_retries_total") == 0  # no lane timed out at the gate


async def test_a_lane_that_committed_is_not_applied_again_while_another_waits_for_its_database() -> None:
    store, broker = FakeEventStore(), FakeBroker()
    job_a, job_b = store.add_job("alice"), store.add_job("bob")
    up, down = FakeDatabase(store), FakeDatabase(store)
    down.down = True
    lane_0 = [on_partition(record_of(prediction(job_a, "alice", 1, i), i), 0) for i in range(3)]
    lane_1 = [on_partition(record_of(prediction(job_b, "bob", 1, i), i), 1) for i in range(3)]
    broker.deliver([*lane_0, *lane_1])
    writer = writer_for(broker, up, down)
    async with running(writer):
        await until(lambda: broker.committed == lane_0)  # its offsets committed; the other lane's kept back
        assert {key[0] for key in store.tables.predictions} == {job_a}
        await until(lambda: broker.paused_waits >= 2)  # the other lane retried, with backoff
        down.down = False
        await until(lambda: len(broker.committed) == 6)
    assert sorted(broker.committed, key=lambda r: (r.partition, r.offset)) == [*lane_0, *lane_1]
    assert metric(writer, "epochscope_writer_rows_applied_total", kind="prediction") == 6
    assert metric(writer, "epochscope_writer_duplicates_skipped_total", kind="prediction") == 0  # none re-applied


async def test_a_refused_event_is_isolated_within_its_lane() -> None:
    store, broker = FakeEventStore(), FakeBroker()
    job_a, job_b = store.add_job("alice"), store.add_job("bob")
    poison = prediction(job_b, "bob", 1, 1)
    store.refused.add(poison.event_id)
    lane_0 = [on_partition(record_of(prediction(job_a, "alice", 1, i), i), 0) for i in range(2)]
    lane_1 = [on_partition(record_of(prediction(job_b, "bob", 1, 0), 0), 1), on_partition(record_of(poison, 1), 1)]
    broker.deliver([*lane_0, *lane_1])
    writer = writer_for(broker, FakeDatabase(store), FakeDatabase(store))
    async with running(writer):
        await until(lambda: len(broker.committed) == 4)
    assert sorted(store.tables.predictions) == sorted([(job_a, 1, "s0"), (job_a, 1, "s1"), (job_b, 1, "s0")])
    [letter] = broker.dead_letters
    assert (letter.reason, letter.partition, letter.offset) == (DeadLetterReason.REJECTED_BY_DATABASE, 1, 1)
