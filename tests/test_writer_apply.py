"""The writer against a real Postgres and a real Tansu broker, run as the `epochscope-writer` subprocess."""

import asyncio
import json
from datetime import timedelta
from uuid import UUID, uuid4

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from writer_events import (
    as_dead_lettered,
    committed_offsets,
    end_offsets,
    original_payload,
    prediction,
    progress,
    publish,
    publish_events,
    read_dead_letters,
    round_summary,
    scored_prediction,
    status,
    warning,
)
from writer_stack import (
    JOB_TOKEN_SECRET,
    Job,
    Stack,
    WriterProcess,
    admin_fetch,
    count_rows,
    create_job,
    job_row,
    now,
    producer_fixture,  # noqa: F401  fixture
    stack_fixture,  # noqa: F401  fixture
    stored_predictions,
    wait_for,
    writer_fixture,  # noqa: F401  fixture
)

from epochscope_runtime.job_token import mint_job_token
from epochscope_schemas.events import JobStatus, encode_event
from epochscope_schemas.notify import job_channel
from epochscope_schemas.topics import TRAINING_PREDICTIONS, TRAINING_STATUS

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="module")]


async def test_redelivered_prediction_leaves_one_row(
    stack: Stack,
    producer: AIOKafkaProducer,
    writer: WriterProcess,
) -> None:
    job = await create_job(stack, "alice")
    event = prediction(job, step=10, sample=1)
    duplicates = "epochscope_writer_duplicates_skipped_total"
    skipped = writer.metric(duplicates, kind="prediction")
    await publish_events(producer, [event, event])
    await wait_for(lambda: _rows_equal(stack, job, 1), timeout=20)
    first = await stored_predictions(stack, [job.job_id])
    assert [stored[:2] for stored in first.values()] == [(str(event.event_id), event.prediction)]
    # Again, and a copy with another event_id and text (a trainer's retry after a restart): both skipped.
    changed = event.model_copy(update={"event_id": uuid4(), "prediction": "a changed answer"})
    await publish_events(producer, [event, changed])
    await wait_for(lambda: _metric_at_least(writer, duplicates, skipped + 3, kind="prediction"), 20)
    assert await count_rows(stack, job.job_id) == (1, 1)
    assert await stored_predictions(stack, [job.job_id]) == first  # same event, text and row version


async def test_owner_comes_from_the_jobs_table(stack: Stack, producer: AIOKafkaProducer) -> None:
    alice_job = await create_job(stack, "alice")
    bob_job = await create_job(stack, "bob")
    # Bob's real token, but the event names Alice's job.
    bobs_token_for_alice = prediction(alice_job, step=1, sample=1, token=bob_job.token)
    # A token for Alice's job that claims Bob, signed with the right key (a leaked secret, a buggy API).
    claimed_by_bob, _ = mint_job_token(JOB_TOKEN_SECRET, alice_job.job_id, "bob", timedelta(hours=1))
    wrong_owner = prediction(alice_job, step=1, sample=2, token=claimed_by_bob)
    forged, _ = mint_job_token("not-the-secret-at-all-0123456789ab", alice_job.job_id, "alice", timedelta(hours=1))
    forged_event = prediction(alice_job, step=1, sample=3, token=forged)
    expired, _ = mint_job_token(JOB_TOKEN_SECRET, alice_job.job_id, "alice", timedelta(seconds=-5))
    expired_event = prediction(alice_job, step=1, sample=4, token=expired)  # valid: the job still exists
    no_token = prediction(alice_job, step=1, sample=5, token="")
    valid = prediction(alice_job, step=1, sample=6)
    await publish_events(producer, [bobs_token_for_alice, wrong_owner, forged_event, expired_event, no_token, valid])

    await wait_for(lambda: _rows_equal(stack, alice_job, 2), timeout=20)
    stored = await admin_fetch(stack, "SELECT sample_id FROM training_predictions WHERE job_id = $1", alice_job.job_id)
    assert sorted(r["sample_id"] for r in stored) == ["s4", "s6"]  # the expired token's event and the valid one
    sent = (bobs_token_for_alice, wrong_owner, forged_event, expired_event, no_token, valid)
    letters = await _letters_for(stack, TRAINING_PREDICTIONS, {e.event_id for e in sent}, at_least=4)
    reasons = {json.loads(original_payload(d))["prediction"].split(" ")[1]: (d["reason"], d["detail"]) for d in letters}
    assert reasons["1"] == ("invalid_token", "job token is for another job (job_token removed from the payload)")
    assert reasons["2"][0] == "owner_mismatch"
    assert reasons["3"][0] == "invalid_token" and "Signature" in reasons["3"][1]
    assert "4" not in reasons and "6" not in reasons
    assert reasons["5"] == ("invalid_token", "missing job token")
    assert await count_rows(stack, bob_job.job_id) == (0, 0)


async def test_malformed_events_are_dead_lettered_and_valid_ones_behind_applied(
    stack: Stack,
    producer: AIOKafkaProducer,
) -> None:
    job = await create_job(stack, "carol")
    valid_before = prediction(job, step=1, sample=1)
    valid_after = prediction(job, step=1, sample=2)
    good = json.loads(encode_event(prediction(job, step=2, sample=1)))
    bad_payloads = {
        b"\xff\xfe not utf-8": "undecodable",
        b"{not json": "undecodable",
        b"[1, 2]": "undecodable",
        json.dumps({**good, "schema_version": 99}).encode(): "unknown_schema_version",
        json.dumps({k: v for k, v in good.items() if k != "prediction"}).encode(): "schema_invalid",
        encode_event(status(job, JobStatus.RUNNING, now())): "unexpected_event_type",
        json.dumps({**good, "prompt": "nul \u0000 inside"}).encode(): "unstorable_value",
        json.dumps({**good, "step": 2**40}).encode(): "unstorable_value",
        json.dumps({**good, "job_id": "3f6b2a4e-0000-4000-8000-000000000000"}).encode(): "invalid_token",
    }
    await publish(producer, TRAINING_PREDICTIONS, job.job_id, encode_event(valid_before))
    for payload in bad_payloads:
        await publish(producer, TRAINING_PREDICTIONS, job.job_id, payload)
    await publish(producer, TRAINING_PREDICTIONS, job.job_id, encode_event(valid_after))
    await producer.flush()

    await wait_for(lambda: _rows_equal(stack, job, 2), timeout=20)
    letters = await read_dead_letters(stack, TRAINING_PREDICTIONS, at_least=len(bad_payloads))
    by_payload = {original_payload(d): d for d in letters}
    for payload, reason in bad_payloads.items():
        letter = by_payload[as_dead_lettered(payload)]
        assert letter["reason"] == reason, letter
        assert letter["topic"] == TRAINING_PREDICTIONS and letter["offset"] >= 0
        assert b'"job_token"' not in original_payload(letter)  # dead letters carry no token


async def test_status_never_goes_back_in_time(stack: Stack, producer: AIOKafkaProducer) -> None:
    job = await create_job(stack, "dave")
    t0 = now()
    await publish_events(producer, [status(job, JobStatus.RUNNING, t0)])
    await wait_for(lambda: _status_is(stack, job, "running"), timeout=20)
    await publish_events(
        producer,
        [
            status(job, JobStatus.COMPLETED, t0 + timedelta(seconds=10)),
            status(job, JobStatus.RUNNING, t0 + timedelta(seconds=5)),  # late and older
            status(job, JobStatus.FAILED, t0 + timedelta(seconds=20)),  # newer, but the job already finished
        ],
    )
    await wait_for(lambda: _status_is(stack, job, "completed"), timeout=20)
    await wait_for(lambda: _all_committed(stack, TRAINING_STATUS), timeout=20)  # the two after it applied too
    row = await job_row(stack, job.job_id)
    assert row["status"] == "completed"
    assert row["started_at"] == t0
    assert row["finished_at"] == t0 + timedelta(seconds=10)
    assert row["status_at"] == t0 + timedelta(seconds=10)


async def test_notifies_the_job_channel_after_commit(stack: Stack, producer: AIOKafkaProducer) -> None:
    job = await create_job(stack, "erin")
    other = await create_job(stack, "erin")
    received: asyncio.Queue[tuple[str, dict]] = asyncio.Queue()
    listener = await asyncpg.connect(stack.admin_dsn)
    for channel in (job_channel(job.job_id), job_channel(other.job_id)):
        await listener.add_listener(channel, lambda *args: received.put_nowait((args[2], json.loads(args[3]))))
    try:
        await publish_events(producer, [prediction(job, step=s, sample=i) for s in (3, 4) for i in range(3)])
        await publish_events(producer, [round_summary(job, 0), progress(job, 5), warning(job), prediction(other, 1, 1)])
        await publish_events(producer, [status(job, JobStatus.RUNNING, now())])
        predictions = 0
        kinds: set[str] = set()
        while predictions < 6 or kinds != {"predictions", "round", "progress", "warning", "status"}:
            channel, note = await asyncio.wait_for(received.get(), timeout=20)
            if note["job_id"] != str(job.job_id):
                assert channel == job_channel(other.job_id)
                continue
            assert channel == job_channel(job.job_id)
            kinds.add(note["kind"])
            if note["kind"] == "predictions":
                assert 3 <= note["first_step"] <= note["last_step"] <= 4
                assert note["first_seq"] <= note["last_seq"]
                predictions += note["count"]
        assert predictions == 6
    finally:
        await listener.close()


async def test_prediction_quality_columns_are_stored(stack: Stack, producer: AIOKafkaProducer) -> None:
    job = await create_job(stack, "gina")
    await publish_events(producer, [scored_prediction(job, step=1, sample=1), prediction(job, step=1, sample=2)])
    await wait_for(lambda: _rows_equal(stack, job, 2), timeout=20)
    rows = await admin_fetch(
        stack,
        "SELECT sample_id, valid, validation_error, exact_match, f1, rouge_l FROM training_predictions"
        " WHERE job_id = $1 ORDER BY sample_id",
        job.job_id,
    )
    assert [tuple(row) for row in rows] == [
        ("s1", False, "not valid JSON", 0.0, 0.5, 0.25),
        ("s2", None, None, None, None, None),
    ]


async def test_rounds_progress_and_warnings_are_idempotent(
    stack: Stack,
    producer: AIOKafkaProducer,
    writer: WriterProcess,
) -> None:
    job = await create_job(stack, "hank")
    first_warning = warning(job, "samples_missing")
    events = [round_summary(job, 0), round_summary(job, 1), progress(job, 10), progress(job, 20), first_warning]
    await publish_events(producer, events)
    # Redelivery of everything, then a late, older progress event and a NaN loss.
    await publish_events(producer, [*events, progress(job, 15), progress(job, 30, loss=float("nan"))])
    await publish_events(producer, [warning(job, "round_failed")])

    async def applied() -> bool:
        [counts] = await admin_fetch(
            stack,
            "SELECT (SELECT count(*) FROM job_rounds WHERE job_id = $1) AS rounds,"
            " (SELECT count(*) FROM job_progress WHERE job_id = $1) AS progress,"
            " (SELECT count(*) FROM job_warnings WHERE job_id = $1) AS warnings",
            job.job_id,
        )
        return tuple(counts) == (2, 4, 2)

    await wait_for(applied, timeout=20)
    await wait_for(lambda: _metric_at_least(writer, "epochscope_writer_duplicates_skipped_total", 2, kind="round"), 20)
    [round_row] = await admin_fetch(stack, "SELECT * FROM job_rounds WHERE job_id = $1 AND round_index = 1", job.job_id)
    assert round_row["owner_id"] == "hank" and round_row["valid"] == 3 and round_row["mean_rouge_l"] == 0.75
    assert round_row["stall_ms"] == 12.5 and round_row["trigger"] == "epoch"
    current = json.loads((await job_row(stack, job.job_id))["progress"])
    assert current["step"] == 30 and current["loss"] is None and current["max_steps"] == 100
    [late] = await admin_fetch(stack, "SELECT loss FROM job_progress WHERE job_id = $1 AND step = 15", job.job_id)
    assert late["loss"] == 1.0
    codes = await admin_fetch(stack, "SELECT code FROM job_warnings WHERE job_id = $1 ORDER BY code", job.job_id)
    assert [row["code"] for row in codes] == ["round_failed", "samples_missing"]


async def test_progress_never_goes_back(stack: Stack, producer: AIOKafkaProducer) -> None:
    job = await create_job(stack, "ivan")
    await publish_events(producer, [progress(job, 50)])
    await wait_for(lambda: _progress_step(stack, job, 50), timeout=20)
    await publish_events(producer, [progress(job, 40), progress(job, 45)])
    await wait_for(lambda: _progress_rows(stack, job, 3), timeout=20)
    assert json.loads((await job_row(stack, job.job_id))["progress"])["step"] == 50


async def test_offsets_are_committed_only_after_the_database_commit(
    stack: Stack,
    producer: AIOKafkaProducer,
    writer: WriterProcess,
) -> None:
    job = await create_job(stack, "frank")
    await publish_events(producer, [prediction(job, step=0, sample=0)])
    await wait_for(lambda: _rows_equal(stack, job, 1), timeout=20)
    await wait_for(lambda: _all_committed(stack), timeout=20)
    before = await committed_offsets(stack, TRAINING_PREDICTIONS)

    stack.postgres.stop()
    try:
        await publish_events(producer, [prediction(job, step=1, sample=i) for i in range(50)])
        await wait_for(lambda: _not_ready(writer), timeout=20)
        await asyncio.sleep(2)
        assert await committed_offsets(stack, TRAINING_PREDICTIONS) == before
    finally:
        stack.postgres.start()
    await wait_for(lambda: _rows_equal(stack, job, 51), timeout=30)
    await wait_for(lambda: _all_committed(stack), timeout=20)
    assert writer.get("/readyz")[0] == 200


async def _rows_equal(stack: Stack, job: Job, expected: int) -> bool:
    rows, distinct = await count_rows(stack, job.job_id)
    assert rows == distinct, "duplicate natural keys"
    return rows == expected


async def _status_is(stack: Stack, job: Job, expected: str) -> bool:
    return (await job_row(stack, job.job_id))["status"] == expected


async def _progress_step(stack: Stack, job: Job, step: int) -> bool:
    document = (await job_row(stack, job.job_id))["progress"]
    return document is not None and json.loads(document)["step"] == step


async def _progress_rows(stack: Stack, job: Job, expected: int) -> bool:
    rows = await admin_fetch(stack, "SELECT step FROM job_progress WHERE job_id = $1", job.job_id)
    return len(rows) == expected


async def _metric_at_least(writer: WriterProcess, name: str, value: float, **labels: str) -> bool:
    return writer.metric(name, **labels) >= value


async def _not_ready(writer: WriterProcess) -> bool:
    return writer.get("/readyz")[0] == 503


async def _all_committed(stack: Stack, topic: str = TRAINING_PREDICTIONS) -> bool:
    committed = await committed_offsets(stack, topic)
    ends = await end_offsets(stack, topic)
    return all(committed.get(p, 0) == end for p, end in ends.items())


async def _letters_for(stack: Stack, topic: str, event_ids: set[UUID], at_least: int | None = None) -> list[dict]:
    """The dead letters of those events, read once at least `at_least` letters (default: one each) are there."""
    wanted = {str(e) for e in event_ids}
    letters = await read_dead_letters(stack, topic, at_least=len(wanted) if at_least is None else at_least)
    return [d for d in letters if json.loads(original_payload(d)).get("event_id") in wanted]
