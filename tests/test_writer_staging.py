"""The writer's inserts through its staging tables (binary COPY, then one INSERT ... SELECT), on a real Postgres under
the writer role and row-level security: what one insert staged never reaches the next one."""

import pytest
from writer_events import prediction
from writer_stack import (
    Stack,
    create_job,
    stack_fixture,  # noqa: F401  fixture
    stored_predictions,
)

from epochscope_writer.adapters.postgres import PostgresDatabase
from epochscope_writer.service_layer.ports import RefusedInput

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="module")]


async def test_two_owners_in_one_transaction_each_store_their_own_rows(stack: Stack) -> None:
    """The second owner's insert must not see the first one's staged rows (RLS would refuse them as another user's)."""
    alice, bob = await create_job(stack, "alice"), await create_job(stack, "bob")
    database = PostgresDatabase(stack.writer_dsn, 5, 30)
    try:
        async with database.transaction() as store:
            await store.act_as("alice")
            new_alice = await store.insert_predictions("alice", [prediction(alice, 1, s) for s in range(3)])
            await store.act_as("bob")
            new_bob = await store.insert_predictions("bob", [prediction(bob, 1, s) for s in range(2)])
        assert [(p.job_id, p.step) for p in new_alice] == [(alice.job_id, 1)] * 3
        assert [(p.job_id, p.step) for p in new_bob] == [(bob.job_id, 1)] * 2
        stored = await stored_predictions(stack, [alice.job_id, bob.job_id])
        assert sorted(key[0] for key in stored) == sorted([str(alice.job_id)] * 3 + [str(bob.job_id)] * 2)

        async with database.transaction() as store:  # a redelivery: nothing new, nothing changed
            await store.act_as("alice")
            assert await store.insert_predictions("alice", [prediction(alice, 1, s) for s in range(3)]) == []
        assert await stored_predictions(stack, [alice.job_id, bob.job_id]) == stored
    finally:
        await database.close()


async def test_one_by_one_retry_stages_each_event_alone(stack: Stack) -> None:
    """The writer's one-by-one retry (a savepoint per event): an event refused rolls back what it staged, and what an
    applied event staged is gone before the next owner's event is inserted."""
    carol, dave = await create_job(stack, "carol"), await create_job(stack, "dave")
    database = PostgresDatabase(stack.writer_dsn, 5, 30)
    try:
        async with database.transaction() as store:
            await store.act_as("carol")
            async with store.savepoint():
                await store.insert_predictions("carol", [prediction(carol, 2, 0)])
            await store.act_as("mallory")  # not carol: RLS refuses her row
            with pytest.raises(RefusedInput):
                async with store.savepoint():
                    await store.insert_predictions("carol", [prediction(carol, 2, 1)])
            await store.act_as("dave")
            async with store.savepoint():
                new = await store.insert_predictions("dave", [prediction(dave, 3, 0)])
        assert [(p.job_id, p.step) for p in new] == [(dave.job_id, 3)]
        stored = await stored_predictions(stack, [carol.job_id, dave.job_id])
        assert sorted(stored) == sorted([(str(carol.job_id), 2, "s0"), (str(dave.job_id), 3, "s0")])
    finally:
        await database.close()
