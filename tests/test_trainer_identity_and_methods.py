"""The child's identity travels in one object from the service's environment to every event it publishes; the
training method is picked from the job config. No broker, no model."""

import queue
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from epochscope_runtime.kafka import KafkaSettings
from epochscope_schemas.config import JobConfig
from epochscope_schemas.events import DatasetObject, JobInputs, JobStartEvent, ModelSource, WarningEvent, parse_event
from epochscope_trainer.child_protocol import JobIdentity, child_env
from epochscope_trainer.job.methods import method_for
from epochscope_trainer.job.methods.sft import SupervisedFineTuning
from epochscope_trainer.publishing.spooling_publisher import EventPublisher

DATASET = DatasetObject(
    dataset_id=uuid.uuid4(), key="datasets/x", file_type="jsonl", row_format="text", sha256="0" * 64, bytes=1
)


def start(attempt_id: uuid.UUID | None) -> JobStartEvent:
    return JobStartEvent(
        job_id=uuid.uuid4(),
        job_token="token-1",
        user_id="user-1",
        attempt_id=attempt_id,
        config=JobConfig(model="tiny", dataset_id=DATASET.dataset_id),
        inputs=JobInputs(model=ModelSource(id="tiny", source="tiny"), train=DATASET),
    )


@pytest.mark.parametrize("attempt_id", [uuid.uuid4(), None])
def test_the_identity_the_service_passes_is_the_one_every_event_carries(
    attempt_id: uuid.UUID | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    event = start(attempt_id)
    monkeypatch.delenv("JOB_ATTEMPT_ID", raising=False)
    for name, value in child_env(event).items():
        monkeypatch.setenv(name, value)
    job = JobIdentity.from_environment()
    assert (job.job_id, job.job_token, job.attempt_id) == (event.job_id, "token-1", attempt_id)
    warning = WarningEvent(**job.envelope(), code="c", message="m")
    assert (warning.job_id, warning.job_token, warning.attempt_id) == (event.job_id, "token-1", attempt_id)

    # The publisher stamps the attempt it is given on an event published without one, and only then.
    publisher = EventPublisher(KafkaSettings(), tmp_path / "spool.sqlite", queue_size=4, attempt_id=job.attempt_id)
    other = uuid.uuid4()
    publisher.publish("t", WarningEvent(job_id=event.job_id, code="c", message="m"))
    publisher.publish("t", WarningEvent(job_id=event.job_id, attempt_id=other, code="c", message="m"))
    sent = [parse_event(publisher._queue.get_nowait().value) for _ in range(2)]
    assert [e.attempt_id for e in sent] == [attempt_id, other]
    with pytest.raises(queue.Empty):
        publisher._queue.get_nowait()


def test_the_method_is_sft_by_default_and_an_unknown_method_is_refused() -> None:
    config = JobConfig(model="tiny", dataset_id=DATASET.dataset_id)
    assert config.method.type == "sft" and isinstance(method_for(config), SupervisedFineTuning)
    explicit = JobConfig.model_validate(
        {"model": "t", "dataset_id": str(DATASET.dataset_id), "method": {"type": "sft"}}
    )
    assert isinstance(method_for(explicit), SupervisedFineTuning)
    with pytest.raises(ValidationError) as raised:
        JobConfig.model_validate({"model": "t", "dataset_id": str(DATASET.dataset_id), "method": {"type": "ppo"}})
    assert raised.value.errors()[0]["loc"][0] == "method"
