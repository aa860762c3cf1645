"""Pure parts of the API: the committed OpenAPI document, the cost estimate, cursors."""

from pathlib import Path

import pytest
from fastapi import HTTPException

from epochscope_api.cursor import decode_cursor, encode_cursor
from epochscope_api.estimate import EstimateRequest, estimate
from epochscope_api.openapi_export import openapi_document, render

OPENAPI_PATH = Path(__file__).resolve().parent.parent / "schemas" / "openapi.json"


def test_committed_openapi_matches_the_app() -> None:
    assert OPENAPI_PATH.read_text() == render(openapi_document()), "run `make schemas` and commit schemas/openapi.json"


def test_every_body_is_a_named_component_and_operation_ids_are_readable() -> None:
    document = openapi_document()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation["operationId"].replace("_", "").isalpha(), (method, path)
            for response in operation["responses"].values():
                for media in response.get("content", {}).values():
                    schema = media.get("schema", {})
                    assert "$ref" in schema or schema == {}, (method, path, media)


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
    assert decode_cursor(encode_cursor([3, "row-000001"]), 2) == [3, "row-000001"]
    for garbage in ("not-base64!", encode_cursor([1]), encode_cursor({"a": 1})):
        with pytest.raises(HTTPException):
            decode_cursor(garbage, 2)
