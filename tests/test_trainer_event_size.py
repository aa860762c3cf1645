"""Events over the broker's message size: texts cut on a UTF-8 boundary and flagged, an event that still
cannot fit reported as a job warning (never spooled, never retried), and the trainer takes the next job.

The trainer runs here against the real Tansu broker, with fake job-consumer adapters and a child that
publishes through the real publisher (the job runner's dataset reading is being rewired elsewhere).
"""

import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import MessageSizeTooLargeError
from single_broker import broker_fixture  # noqa: F401  fixture
from trainer_fakes import FakeCancelStream, FakeJobConsumer, FakeProducer

from epochscope_runtime.grading import Judge
from epochscope_runtime.kafka import KafkaSettings
from epochscope_runtime.sampler import Sample
from epochscope_schemas.config import JobConfig, PredictionsConfig
from epochscope_schemas.events import (
    DatasetObject,
    JobInputs,
    JobStartEvent,
    JobStatusEvent,
    ModelSource,
    PredictionEvent,
    encode_event,
    parse_event,
)
from epochscope_schemas.topics import TRAINING_PREDICTIONS, TRAINING_STATUS
from epochscope_trainer.child_protocol import SPOOL_FILE, JobIdentity
from epochscope_trainer.job.generation import Generation
from epochscope_trainer.job.predictions.round_publisher import RoundPublisher
from epochscope_trainer.job.predictions.round_runner import RoundKey
from epochscope_trainer.publishing.spool_store import Outgoing
from epochscope_trainer.publishing.spooling_publisher import EventPublisher
from epochscope_trainer.service.bootstrap import KafkaAdapters, bootstrap
from epochscope_trainer.service.child_launcher import SubprocessLauncher
from epochscope_trainer.settings import TrainerSettings
from epochscope_trainer.text_limits import DEFAULT_TEXT_MAX_BYTES, truncate_utf8

HUGE = "é" * 600_000  # a 1.2 MB completion


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("abc", 3, ("abc", False)),
        ("abcd", 3, ("abc", True)),
        ("aé", 2, ("a", True)),  # é is 2 bytes: never half of it
        ("aé", 3, ("aé", False)),
        ("😀😀", 7, ("😀", True)),  # 4-byte characters
        ("漢字", 5, ("漢", True)),
        ("", 0, ("", False)),
    ],
)
def test_truncation_cuts_on_a_utf8_boundary(text: str, limit: int, expected: tuple[str, bool]) -> None:
    assert truncate_utf8(text, limit) == expected


def test_a_huge_row_makes_a_truncated_flagged_prediction_within_the_message_limit() -> None:
    published: list[tuple[str, Any]] = []
    publisher = RoundPublisher(
        [], Judge(PredictionsConfig().graders), lambda topic, event: published.append((topic, event)),
        JobIdentity(uuid.uuid4(), "t"),
    )  # fmt: skip
    sample = Sample("line-7", 0, None, "short prompt", ground_truth=HUGE)
    event = publisher.prediction(RoundKey(0, 0.0, 0, "baseline"), sample, "short prompt", Generation(HUGE, 9, 1.0))
    assert event.truncated == ["ground_truth", "prediction"]
    assert event.prompt == "short prompt"
    assert len(event.prediction.encode()) <= DEFAULT_TEXT_MAX_BYTES and set(event.prediction) == {"é"}
    assert event.prediction == event.ground_truth == HUGE[: DEFAULT_TEXT_MAX_BYTES // 2]
    assert event.scores is not None and event.scores.exact_match == 1.0  # scored on the whole texts
    assert len(encode_event(event)) < KafkaSettings().max_message_bytes
    assert parse_event(encode_event(event)) == event  # a consumer reads the flag back


def prediction(job_id: uuid.UUID, text: str, step: int = 0) -> PredictionEvent:
    return PredictionEvent(
        job_id=job_id, job_token="token-1", round_index=0, epoch=0.0, step=step, sample_id="s1",
        sample_index=0, prompt="p", prediction=text,
    )  # fmt: skip


async def consume(bootstrap: str, topics: list[str], expected: int) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    received: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 30
        while len(received) < expected and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                received += [json.loads(r.value) for r in records]
    finally:
        await consumer.stop()
    return received


async def test_an_event_over_the_message_limit_becomes_a_warning_and_the_rest_flows(
    tmp_path: Path, broker: str
) -> None:
    job_id = uuid.uuid4()
    spool = tmp_path / SPOOL_FILE
    publisher = EventPublisher(KafkaSettings(bootstrap_servers=broker), spool, queue_size=10)
    publisher.start()
    publisher.publish(TRAINING_PREDICTIONS, prediction(job_id, HUGE))
    publisher.publish(TRAINING_PREDICTIONS, prediction(job_id, "fits", step=1))
    publisher.publish(TRAINING_STATUS, JobStatusEvent(job_id=job_id, job_token="token-1", status="completed"))
    assert await asyncio.to_thread(publisher.close, 30) == 0
    assert not spool.exists() and publisher.refused == 1
    received = await consume(broker, [TRAINING_PREDICTIONS, TRAINING_STATUS], 3)
    by_type = {event["type"]: event for event in received}
    assert len(received) == 3 and by_type["prediction"]["prediction"] == "fits"
    warning = by_type["job.warning"]
    assert (warning["code"], warning["job_id"], warning["job_token"]) == ("event_too_large", str(job_id), "token-1")
    assert "prediction event" in warning["message"] and "over the 1048576-byte message limit" in warning["message"]


class RefusingProducer:
    """Acknowledges every event but those over `limit` bytes, which fail as a broker refusing them would."""

    def __init__(self, limit: int) -> None:
        self.limit, self.sent = limit, []

    async def send(self, topic: str, value: bytes, key: bytes) -> "asyncio.Future[object]":
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if len(value) > self.limit:
            future.set_exception(MessageSizeTooLargeError("MESSAGE_TOO_LARGE"))
        else:
            self.sent.append((topic, json.loads(value)))
            future.set_result(None)
        return future


async def test_a_broker_refusing_an_event_as_too_large_is_a_warning_not_an_outage(tmp_path: Path) -> None:
    job_id = uuid.uuid4()
    publisher = EventPublisher(KafkaSettings(), tmp_path / SPOOL_FILE, queue_size=10)
    producer = RefusingProducer(limit=10_000)
    items = [
        Outgoing(TRAINING_PREDICTIONS, str(job_id), encode_event(prediction(job_id, t))) for t in ("a", "b" * 20_000)
    ]
    await publisher._deliver(producer, items)  # type: ignore[arg-type]  no raise: not an outage
    assert [(topic, event["type"]) for topic, event in producer.sent] == [
        (TRAINING_PREDICTIONS, "prediction"),
        (TRAINING_STATUS, "job.warning"),
    ]
    assert producer.sent[1][1]["code"] == "event_refused" and publisher.refused == 1


CHILD = """
import sys
from pathlib import Path
from epochscope_schemas.events import JobStatusEvent, PredictionEvent
from epochscope_schemas.topics import TRAINING_PREDICTIONS, TRAINING_STATUS
from epochscope_trainer.child_protocol import SPOOL_FILE, ChildExit, read_identity
from epochscope_trainer.settings import TrainerSettings
from epochscope_trainer.publishing.spooling_publisher import EventPublisher

job_dir = Path(sys.argv[1])
identity = read_identity()
envelope = {"job_id": identity["JOB_ID"], "job_token": identity["JOB_TOKEN"]}
settings = TrainerSettings()
publisher = EventPublisher(settings.kafka, job_dir / SPOOL_FILE, settings.publish_queue_size, to_broker=False)
publisher.start()
# As the trainer before the text limit did: the whole 1.2 MB completion in one event.
publisher.publish(TRAINING_PREDICTIONS, PredictionEvent(**envelope, round_index=0, epoch=0, step=0,
    sample_id="s1", sample_index=0, prompt="p", prediction="\u00e9" * 600_000))
publisher.publish(TRAINING_STATUS, JobStatusEvent(**envelope, status="completed"))
publisher.close(settings.flush_timeout_s)
sys.exit(ChildExit.EVENTS_LOST if publisher.held() else ChildExit.FINISHED)
"""


def start_event() -> JobStartEvent:
    dataset = DatasetObject(
        dataset_id=uuid.uuid4(), key="datasets/x", file_type="jsonl", row_format="prompt_completion",
        sha256="0" * 64, bytes=1,
    )  # fmt: skip
    return JobStartEvent(
        job_id=uuid.uuid4(),
        job_token="token-1",
        user_id="user-1",
        trainer_id="trainer-1",
        attempt_id=uuid.uuid4(),
        config=JobConfig(model="tiny", dataset_id=dataset.dataset_id),
        inputs=JobInputs(model=ModelSource(id="tiny", source="tiny"), train=dataset),
    )


async def test_a_job_with_a_huge_prediction_ends_and_the_trainer_takes_the_next_job(
    tmp_path: Path, broker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EPOCHSCOPE_KAFKA_BOOTSTRAP_SERVERS", broker)  # the service's: the child gets none
    monkeypatch.setenv("EPOCHSCOPE_TRAINER_FLUSH_TIMEOUT_S", "20")
    (tmp_path / "store").mkdir()
    monkeypatch.setenv("EPOCHSCOPE_STORE_LOCAL_DIR", str(tmp_path / "store"))
    first, second = start_event(), start_event()
    stopping = asyncio.Event()
    jobs = FakeJobConsumer([encode_event(first), encode_event(second)], stopping)
    settings = TrainerSettings(work_dir=tmp_path / "work", cancel_check_s=0.05, heartbeat_s=0, instance="trainer-1")
    service = bootstrap(
        settings,
        stopping,
        SubprocessLauncher(lambda job_dir: [sys.executable, "-c", CHILD, str(job_dir)]),
        KafkaAdapters(jobs, FakeCancelStream(), FakeProducer()),
    )  # the real spool delivery: before, it retried the huge event forever and no next job ever started
    await asyncio.wait_for(service.run(), 120)
    assert not any((settings.work_dir / str(e.job_id) / SPOOL_FILE).exists() for e in (first, second))
    received = await consume(broker, [TRAINING_PREDICTIONS, TRAINING_STATUS], 4)
    summary = sorted((event["job_id"], event["type"], event.get("code") or event.get("status")) for event in received)
    assert summary == sorted(
        [(str(e.job_id), "job.warning", "event_too_large") for e in (first, second)]
        + [(str(e.job_id), "job.status", "completed") for e in (first, second)]
    )
