"""What the writer's throughput is compared with: a naive consumer and a raw COPY of the same rows."""

import time
from collections.abc import Callable

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from writer_throughput_stack import PARTITIONS, BenchJob, Stack

from epochscope_schemas.events import PredictionEvent, parse_event
from epochscope_schemas.topics import TRAINING_PREDICTIONS
from epochscope_writer.adapters.postgres_tables import PREDICTIONS_TABLE


async def raw_copy(
    stack: Stack, jobs: list[BenchJob], events: list[PredictionEvent], postgres_cpu: Callable[[], float]
) -> tuple[float, float, float]:
    """rows/s of COPY of the writer's own rows (built before timing) into the table, as the admin, with the CPU
    seconds this process (asyncpg encoding and sending them) and Postgres (`postgres_cpu`) spent meanwhile."""
    owners = {job.job_id: job.owner for job in jobs}
    rows = [PREDICTIONS_TABLE.row(event, owners[event.job_id]) for event in events]
    conn = await asyncpg.connect(stack.postgres.admin_url, command_timeout=3600)
    try:
        started, client_cpu, postgres_cpu_s = time.perf_counter(), time.process_time(), postgres_cpu()
        await conn.copy_records_to_table(
            "training_predictions", records=rows, columns=[c.name for c in PREDICTIONS_TABLE.columns]
        )
        rate = len(rows) / (time.perf_counter() - started)
        return rate, time.process_time() - client_cpu, postgres_cpu() - postgres_cpu_s
    finally:
        await conn.close()


async def naive(stack: Stack, jobs: list[BenchJob], count: int) -> float:
    """rows/s of a consumer that inserts and commits one event at a time (the first `count` events), timed from its
    first fetched batch in hand, as the writers are."""
    owners = {job.job_id: job.owner for job in jobs}
    columns = ", ".join(c.name for c in PREDICTIONS_TABLE.columns)
    values = ", ".join(f"${i}" for i in range(1, len(PREDICTIONS_TABLE.columns) + 1))
    insert = f"INSERT INTO training_predictions ({columns}) VALUES ({values}) ON CONFLICT DO NOTHING"
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.broker.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    conn = await asyncpg.connect(stack.writer_dsn)
    try:
        partitions = [TopicPartition(TRAINING_PREDICTIONS, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        acting_as = None
        done = 0
        batch = {}
        while not any(batch.values()):  # timed, as the writers are, from a fetched batch in hand
            batch = await consumer.getmany(timeout_ms=1000, max_records=500)
        started = time.perf_counter()
        while done < count:
            for messages in batch.values():
                for message in messages:
                    if done == count:
                        break
                    event = parse_event(message.value)
                    assert isinstance(event, PredictionEvent)
                    owner = owners[event.job_id]
                    if owner != acting_as:  # the RLS user for the session, set only when it changes
                        await conn.execute("SELECT set_config('app.user_id', $1, false)", owner)
                        acting_as = owner
                    await conn.execute(insert, *PREDICTIONS_TABLE.row(event, owner))
                    done += 1
            if done < count:
                batch = await consumer.getmany(timeout_ms=1000, max_records=500)
        return count / (time.perf_counter() - started)
    finally:
        await conn.close()
        await consumer.stop()
