"""The shared models: their committed JSON Schema, validation rules and server limits."""

import json
from pathlib import Path
from uuid import uuid4

import pytest
from pydantic import ValidationError

from epochscope_schemas.config import JobConfig, PredictionLimits, limit_violations
from epochscope_schemas.events import JobStatusEvent, PredictionEvent, encode_event, parse_event
from epochscope_schemas.export import render, schema_documents

JSON_DIR = Path(__file__).resolve().parent.parent / "schemas" / "json"


def test_committed_json_schemas_match_the_models() -> None:
    documents = schema_documents()
    committed = {path.name for path in JSON_DIR.glob("*.json")}
    assert committed == set(documents), "run `make schemas` and commit schemas/json"
    for name, document in documents.items():
        assert (JSON_DIR / name).read_text() == render(document), f"{name} drifted: run `make schemas`"


def test_events_round_trip_through_json() -> None:
    event = PredictionEvent(
        job_id=uuid4(),
        round_index=0,
        epoch=1.0,
        step=4,
        sample_id="row-000001",
        sample_index=0,
        prompt="p",
        ground_truth="g",
        prediction="x",
    )
    assert parse_event(encode_event(event)) == event


@pytest.mark.parametrize(
    "patch",
    [{"schema_version": 2}, {"type": "nope"}, {"job_id": "not-a-uuid"}, {"status": "exploded"}],
)
def test_parse_event_rejects_unknown_versions_types_and_bad_fields(patch: dict) -> None:
    raw = json.loads(encode_event(JobStatusEvent(job_id=uuid4(), status="running")))
    with pytest.raises(ValidationError):
        parse_event(json.dumps(raw | patch))


def test_steps_frequency_needs_an_interval() -> None:
    with pytest.raises(ValidationError, match="step_interval"):
        JobConfig(model="m", dataset_id=uuid4(), predictions={"sample_frequency": "steps"})


def test_server_limits_come_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    config = JobConfig(model="m", dataset_id=uuid4(), predictions={"enabled": True, "sample_count": 20})
    assert limit_violations(config, PredictionLimits()) == []
    monkeypatch.setenv("EPOCHSCOPE_PREDICTIONS_MAX_SAMPLE_COUNT", "10")
    assert limit_violations(config, PredictionLimits()) == [
        (("predictions", "sample_count"), "must be at most 10 (server limit)")
    ]


@pytest.mark.parametrize("field", ["dataset_path", "eval_dataset_path"])
def test_a_job_config_with_a_path_field_is_refused_naming_the_field(field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        JobConfig.model_validate({"model": "m", "dataset_id": str(uuid4()), field: "/etc/passwd"})
    assert [error["loc"] for error in raised.value.errors()] == [(field,)]
    with pytest.raises(ValidationError) as raised:
        JobConfig.model_validate({"model": "m", "dataset_id": str(uuid4()), "predictions": {"samples_path": "/x"}})
    assert [error["loc"] for error in raised.value.errors()] == [("predictions", "samples_path")]


def test_a_version_1_job_start_event_is_refused() -> None:
    """Version 2 named datasets by object key and the model by its catalog source, version 3 addresses one trainer
    as one attempt; a v1 event (paths) or a v2 (unaddressed) is refused."""
    dataset = {"dataset_id": str(uuid4()), "key": "datasets/u/d.jsonl", "file_type": "jsonl", "row_format": "chat"}
    start = {
        "type": "job.start",
        "job_id": str(uuid4()),
        "user_id": "alice",
        "config": {"model": "m", "dataset_id": dataset["dataset_id"]},
        "inputs": {
            "model": {"id": "m", "source": "dir:/models/m"},
            "train": dataset | {"sha256": "0" * 64, "bytes": 10},
        },
    }
    assert parse_event(json.dumps(start)).schema_version == 3  # 3: addressed to a trainer as one attempt
    for old in (1, 2):
        with pytest.raises(ValidationError):
            parse_event(json.dumps(start | {"schema_version": old}))
