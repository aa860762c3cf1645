"""Pure parts of the API: the committed OpenAPI document, the cost estimate, cursors, stream positions."""

from pathlib import Path

import pytest
from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError

from epochscope_api.cursor import INT4, decode_cursor, encode_cursor, text
from epochscope_api.estimate import EstimateRequest, estimate
from epochscope_api.live import KINDS, kinds_of
from epochscope_api.openapi_export import openapi_document, render
from epochscope_api.routers.stream import parse_position
from epochscope_api.validation import check_job_config
from epochscope_schemas.config import JobConfig, PredictionLimits

OPENAPI_PATH = Path(__file__).resolve().parent.parent / "schemas" / "openapi.json"


def test_committed_openapi_matches_the_app() -> None:
    assert OPENAPI_PATH.read_text() == render(openapi_document()), "run `make schemas` and commit schemas/openapi.json"


def test_every_body_is_a_named_component_errors_share_one_model_and_operation_ids_are_readable() -> None:
    document = openapi_document()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation["operationId"].replace("_", "").isalpha(), (method, path)
            bodies = [("request", operation.get("requestBody", {})), *operation["responses"].items()]
            for code, body in bodies:
                for media in body.get("content", {}).values():
                    schema = media.get("schema", {})
                    assert "$ref" in schema or schema == {}, (method, path, media)
                    if code.startswith("4"):  # one error model
                        assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path, code)


def request(**predictions: object) -> EstimateRequest:
    config = {"enabled": True, "sample_count": 16, "max_new_tokens": 64} | predictions
    return EstimateRequest(predictions=config, num_epochs=3, dataset_size=1000, batch_size=10)


def test_estimate_per_epoch() -> None:
    result = estimate(request(), tokens_per_second=64.0, price_per_hour=3.6)
    assert (result.rounds, result.predictions, result.tokens) == (3, 48, 3072)
    assert result.seconds == 48.0
    assert result.price_usd == 0.048


def test_estimate_every_n_steps_and_disabled() -> None:
    assert estimate(request(sample_frequency="steps", step_interval=40), 64.0, 1.0).rounds == 7  # 300 steps // 40
    assert estimate(request(enabled=False), 64.0, 1.0).tokens == 0


def test_estimate_grows_with_sample_count() -> None:
    assert estimate(request(sample_count=32), 64.0, 1.0).tokens == 2 * estimate(request(), 64.0, 1.0).tokens


def test_cursor_round_trip_and_garbage() -> None:
    assert decode_cursor(encode_cursor([3, "row-000001"]), INT4, text) == [3, "row-000001"]
    foreign = (
        "not-base64!",
        encode_cursor([1]),
        encode_cursor({"a": 1}),
        encode_cursor(["3", "row"]),  # a string where the step goes
        encode_cursor([2**31, "row"]),  # no Postgres integer
        encode_cursor([True, "row"]),
        encode_cursor([3, "nul\x00"]),  # no Postgres text
    )
    for garbage in foreign:
        with pytest.raises(HTTPException) as raised:
            decode_cursor(garbage, INT4, text, name="cursor")
        assert raised.value.status_code == 422 and raised.value.detail.startswith("cursor:")


def test_stream_position_round_trip() -> None:
    assert parse_position(None) == [0, -1, -1, 0]
    assert parse_position(encode_cursor([120, 7, 500, 3])) == [120, 7, 500, 3]
    with pytest.raises(HTTPException):
        parse_position("120")  # a bare prediction sequence: not a position this stream made


def test_notify_payload_names_what_to_read_again() -> None:
    assert kinds_of('{"job_id": "x", "kind": "progress", "count": 3}') == {"progress"}
    for anything in ("{}", "not json", "[1]", '{"kind": ["round"]}', '{"kind": "unknown"}'):
        assert kinds_of(anything) == KINDS


def test_a_nul_character_is_a_field_error(tmp_path: Path) -> None:
    dataset = tmp_path / "train.jsonl"
    dataset.write_text("{}\n")
    config = JobConfig(model="tiny\x00", dataset_path=str(dataset))
    with pytest.raises(RequestValidationError) as raised:
        check_job_config(config, PredictionLimits())
    assert [error["loc"] for error in raised.value.errors()] == [("body", "model")]
