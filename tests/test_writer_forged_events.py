"""The broker is not a trust boundary (issue 23, item 2, the writer's part), on the real broker and Postgres.

Whatever an event names is checked against what its job's ids build and what the database says: a checkpoint whose
key or id is not its own job's (the API streams `{key}/{name}` with read-write store credentials), a file named
`..`, an event naming another job's attempt, a token of another job or of another attempt, a heartbeat unsigned,
signed with a key no writer accepts, or in another trainer's name. Each is dead-lettered with its reason and nothing
of it is stored, while the honest event beside it is.
"""

import json
import uuid
from datetime import timedelta

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from start_keys import new_sealing_key
from writer_events import (
    as_dead_lettered,
    original_payload,
    prediction,
    publish,
    publish_events,
    read_dead_letters,
    status,
)
from writer_queue import dispatch, queue, queue_state
from writer_stack import (
    JOB_TOKEN_SECRET,
    TRAINER_IDENTITIES,
    WRITER_DB_PASSWORD,
    Job,
    Stack,
    admin_fetch,
    count_rows,
    create_job,
    job_row,
    now,
    producer_fixture,  # noqa: F401  fixture
    stack_fixture,  # noqa: F401  fixture
    wait_for,
    writer_fixture,  # noqa: F401  fixture
)

from epochscope_db.migrate import MigrateSettings, migrate
from epochscope_runtime.dispatch_keys import load_private_key, public_key_text
from epochscope_runtime.heartbeat_signing import bound_trainer_id, signed_heartbeat
from epochscope_runtime.job_token import JobTokenClaims, job_token_for
from epochscope_schemas.checkpoints import checkpoint_id, checkpoint_key
from epochscope_schemas.events import (
    CheckpointDeletedEvent,
    CheckpointEvent,
    CheckpointFile,
    JobStatus,
    encode_event,
)
from epochscope_schemas.scheduling import TrainerHeartbeat
from epochscope_schemas.topics import TRAINER_HEARTBEATS, TRAINING_PREDICTIONS, TRAINING_STATUS

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="module")]


def checkpoint(job: Job, round_index: int, **fields: object) -> CheckpointEvent:
    """The checkpoint the trainer would announce for the round, unless `fields` say otherwise."""
    return CheckpointEvent(
        **{
            "job_id": job.job_id,
            "job_token": job.token,
            "checkpoint_id": checkpoint_id(job.job_id, round_index),
            "round_index": round_index,
            "step": round_index,
            "epoch": float(round_index),
            "key": checkpoint_key(job.job_id, round_index),
            "files": [CheckpointFile(name="adapter_model.safetensors", bytes=3, sha256="0" * 64)],
            "bytes": 3,
            "sha256": "1" * 64,
            **fields,
        }
    )


async def checkpoints_of(stack: Stack, job: Job) -> list[tuple[uuid.UUID, str, bool]]:
    rows = await admin_fetch(
        stack,
        "SELECT checkpoint_id, key, deleted_at IS NOT NULL AS deleted FROM job_checkpoints WHERE job_id = $1",
        job.job_id,
    )
    return sorted((row["checkpoint_id"], row["key"], row["deleted"]) for row in rows)


def assert_dead_lettered(letters: list[dict], refused: dict[bytes, str]) -> None:
    by_payload = {original_payload(letter): letter for letter in letters}
    for payload, reason in refused.items():
        letter = by_payload.get(as_dead_lettered(payload))
        assert letter is not None, f"not dead-lettered: {payload[:160]!r}"
        assert letter["reason"] == reason and letter["detail"], (payload[:160], letter)


async def test_a_checkpoint_naming_anything_but_its_own_jobs_objects_is_dead_lettered(
    stack: Stack, producer: AIOKafkaProducer
) -> None:
    job, neighbour = await create_job(stack, "alice"), await create_job(stack, "alice")
    victims_dataset = f"datasets/bob/{uuid.uuid4()}.jsonl"
    await publish_events(producer, [checkpoint(neighbour, 1)])
    await wait_for(lambda: checkpoints_of(stack, neighbour), timeout=30)

    with_dot_dot = json.loads(encode_event(checkpoint(job, 5)))
    with_dot_dot["files"][0]["name"] = ".."
    refused = {
        encode_event(checkpoint(job, 1, key=victims_dataset)): "foreign_checkpoint",
        encode_event(checkpoint(job, 2, key=f"{checkpoint_key(job.job_id, 2)}/../../../../{victims_dataset}")): (
            "foreign_checkpoint"
        ),
        encode_event(checkpoint(job, 3, key=checkpoint_key(neighbour.job_id, 3))): "foreign_checkpoint",
        encode_event(checkpoint(job, 4, checkpoint_id=checkpoint_id(neighbour.job_id, 4))): "foreign_checkpoint",
        json.dumps(with_dot_dot).encode(): "schema_invalid",
        encode_event(
            CheckpointDeletedEvent(
                job_id=job.job_id,
                job_token=job.token,
                checkpoint_id=checkpoint_id(neighbour.job_id, 1),
                round_index=1,
            )
        ): "foreign_checkpoint",
    }
    for payload in refused:
        await publish(producer, TRAINING_STATUS, job.job_id, payload)
    honest = checkpoint(job, 6)
    await publish_events(producer, [honest])

    letters = await read_dead_letters(stack, TRAINING_STATUS, at_least=len(refused))
    assert_dead_lettered(letters, refused)
    assert await checkpoints_of(stack, job) == [(honest.checkpoint_id, checkpoint_key(job.job_id, 6), False)]
    assert await checkpoints_of(stack, neighbour) == [
        (checkpoint_id(neighbour.job_id, 1), checkpoint_key(neighbour.job_id, 1), False)
    ]


async def test_an_event_for_another_jobs_attempt_or_with_another_attempts_token_is_dead_lettered(
    stack: Stack, producer: AIOKafkaProducer
) -> None:
    theirs, mine, outside = (
        await create_job(stack, "carl"),
        await create_job(stack, "dina"),
        await create_job(stack, "dina"),
    )
    for job in (theirs, mine):
        await queue(stack, job)
    their_attempt = await dispatch(stack, theirs, "trainer-1")
    my_attempt = await dispatch(stack, mine, "trainer-2")

    def mine_at(step: int, **fields: object) -> bytes:
        event = prediction(mine, step=step, sample=0).model_copy(update={"attempt_id": my_attempt, **fields})
        return encode_event(event)

    other_attempts_token = job_token_for(
        JOB_TOKEN_SECRET, JobTokenClaims(mine.job_id, mine.owner, now(), attempt_id=their_attempt)
    )
    my_attempts_token = job_token_for(
        JOB_TOKEN_SECRET, JobTokenClaims(mine.job_id, mine.owner, now(), attempt_id=my_attempt)
    )
    refused_predictions = {
        mine_at(1, attempt_id=their_attempt): "stale_attempt",  # another job's current attempt
        mine_at(2, job_token=theirs.token): "invalid_token",  # another job's token
        mine_at(3, job_token=other_attempts_token): "invalid_token",  # this job's token, minted for another attempt
    }
    outside_final = status(outside, JobStatus.FAILED, now()).model_copy(update={"attempt_id": their_attempt})
    refused_statuses = {encode_event(outside_final): "stale_attempt"}  # a job outside the queue names another's
    for payload in refused_predictions:
        await publish(producer, TRAINING_PREDICTIONS, mine.job_id, payload)
    await publish(producer, TRAINING_STATUS, outside.job_id, encode_event(outside_final))
    honest = [mine_at(10), mine_at(11, job_token=my_attempts_token)]
    for payload in honest:
        await publish(producer, TRAINING_PREDICTIONS, mine.job_id, payload)
    await producer.flush()

    assert_dead_lettered(
        await read_dead_letters(stack, TRAINING_PREDICTIONS, at_least=len(refused_predictions)), refused_predictions
    )
    assert_dead_lettered(await read_dead_letters(stack, TRAINING_STATUS, at_least=1), refused_statuses)
    await wait_for(lambda: _rows_are(stack, mine, 2), timeout=30)
    steps = await admin_fetch(stack, "SELECT step FROM training_predictions WHERE job_id = $1", mine.job_id)
    assert sorted(row["step"] for row in steps) == [10, 11]
    assert (await job_row(stack, outside.job_id))["status"] == "queued"
    [attempt] = await admin_fetch(stack, "SELECT * FROM job_attempts WHERE attempt_id = $1", their_attempt)
    assert attempt["ended_at"] is None and attempt["outcome"] is None, dict(attempt)
    assert await queue_state(stack, theirs) == "dispatched"


async def test_checkpoints_stored_before_the_check_are_set_aside_by_the_migration(stack: Stack) -> None:
    job = await create_job(stack, "erin")
    stored = {  # round -> (key, file name, set aside)
        1: (checkpoint_key(job.job_id, 1), "adapter_model.safetensors", False),
        2: (f"datasets/bob/{uuid.uuid4()}.jsonl", "adapter_model.safetensors", True),
        3: (checkpoint_key(job.job_id, 3), "..", True),
    }
    admin = await asyncpg.connect(stack.admin_dsn)
    try:
        for round_index, (key, name, _) in stored.items():
            await admin.execute(
                "INSERT INTO job_checkpoints (checkpoint_id, job_id, owner_id, round_index, step, epoch, final, key,"
                " files, bytes, sha256, metrics, save_ms, stall_ms, upload_ms, occurred_at)"
                " VALUES ($1, $2, $3, $4::int, $4::int, $4::int, false, $5, $6::jsonb, 3, $7, '{}', 0, 0, 0, now())",
                checkpoint_id(job.job_id, round_index),
                job.job_id,
                job.owner,
                round_index,
                key,
                json.dumps([{"name": name, "bytes": 3, "sha256": "0" * 64}]),
                "1" * 64,
            )
        await admin.execute("DELETE FROM schema_migrations WHERE version = $1", SET_ASIDE_MIGRATION)
    finally:
        await admin.close()
    settings = MigrateSettings(
        admin_database_url=stack.admin_dsn, writer_db_password=WRITER_DB_PASSWORD, environment="development"
    )
    assert await migrate(settings) == [SET_ASIDE_MIGRATION]
    assert await checkpoints_of(stack, job) == sorted(
        (checkpoint_id(job.job_id, round_index), key, set_aside) for round_index, (key, _, set_aside) in stored.items()
    )


SET_ASIDE_MIGRATION = "0018_checkpoints_built_from_ids"


async def _rows_are(stack: Stack, job: Job, expected: int) -> bool:
    return (await count_rows(stack, job.job_id))[0] == expected


async def test_a_heartbeat_speaks_only_for_its_own_accepted_key(stack: Stack, producer: AIOKafkaProducer) -> None:
    alice, bob = (load_private_key(private) for private, _ in TRAINER_IDENTITIES)  # both accepted by the writer
    mallory = Ed25519PrivateKey.generate()  # accepted by no writer
    alice_id, mallory_id = bound_trainer_id(alice, "gpu-1"), bound_trainer_id(mallory, "gpu-9")
    alice_seals, bob_seals = new_sealing_key()[1], new_sealing_key()[1]

    def beat(trainer_id: str, sealing_key: str, seconds_later: int = 0) -> TrainerHeartbeat:
        at = now() + timedelta(seconds=seconds_later)
        return TrainerHeartbeat(trainer_id=trainer_id, sealing_key=sealing_key, slots=4, free_slots=4, occurred_at=at)

    async def send_all() -> list[asyncpg.Record]:
        """A fresh round of every beat (the writer reads its heartbeats from the latest offset once it has joined):
        the honest one, then forgeries later than it, which would replace it and draw Alice's tokens to Bob's key."""
        for heartbeat in (
            signed_heartbeat(beat(alice_id, alice_seals), alice),
            signed_heartbeat(beat(mallory_id, bob_seals), mallory),  # a key no writer accepts
            signed_heartbeat(beat(alice_id, bob_seals, 1), bob),  # Bob's accepted key, in Alice's name
            beat(alice_id, bob_seals, 2),  # unsigned, in Alice's name
        ):
            await producer.send_and_wait(TRAINER_HEARTBEATS, heartbeat.model_dump_json().encode(), key=b"t")
        return await admin_fetch(stack, "SELECT 1 FROM trainers WHERE trainer_id = $1", alice_id)

    await wait_for(send_all, timeout=60, interval=0.5)  # the honest beat is recorded
    forgeries = {
        (mallory_id, public_key_text(mallory.public_key())): "unaccepted key",
        (alice_id, public_key_text(bob.public_key())): "Bob for Alice",
        (alice_id, None): "unsigned",
    }
    reasons: dict[str, set[str]] = {}

    async def every_forgery_dead_lettered() -> bool:
        await send_all()
        reasons.clear()
        for letter in await read_dead_letters(stack, TRAINER_HEARTBEATS, at_least=3, timeout=5):
            payload = json.loads(original_payload(letter))
            forgery = forgeries[(payload["trainer_id"], payload["identity_key"])]  # never the honest beat
            reasons.setdefault(forgery, set()).add(letter["reason"])
        return len(reasons) == len(forgeries)

    await wait_for(every_forgery_dead_lettered, timeout=60, interval=0.5)
    assert reasons == {
        "unaccepted key": {"unaccepted_trainer_key"},
        "Bob for Alice": {"trainer_id_not_bound"},
        "unsigned": {"invalid_signature"},
    }
    rows = await admin_fetch(
        stack, "SELECT trainer_id, sealing_key FROM trainers WHERE trainer_id = ANY($1)", [alice_id, mallory_id]
    )
    assert [(r["trainer_id"], r["sealing_key"]) for r in rows] == [(alice_id, alice_seals)]  # the honest one alone
