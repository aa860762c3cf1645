"""POST /v1/graders/run: the verdict is the runtime Grader's (the trainer's code), every input is bounded, and the
route is authenticated. TestClient without its lifespan: no database or broker; the write limiter (a Postgres
counter, proven in the quota tests) is replaced by the bearer check alone."""

import time
from typing import Any, get_args

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr, TypeAdapter

from epochscope_api.deps import CurrentUser, current_user, limit_writes
from epochscope_api.main import create_app
from epochscope_runtime.grading import GROUND_TRUTH, Grader
from epochscope_schemas.graders import GraderConfig
from epochscope_schemas.methods import GrpoLimits
from tests.test_api_units import api_settings

GRADER = TypeAdapter(GraderConfig)
TRUTH = '{"city": "Paris", "nights": 2}'

# (grader, answer, references): every grader type, scores strictly between 0 and 1 where the type has them
CASES: list[tuple[dict[str, Any], str, dict[str, str]]] = [
    ({"type": "json_parse", "name": "j"}, '```json\n{"a": 1}\n```', {}),
    ({"type": "json_parse", "name": "j"}, "{not json", {}),
    ({"type": "json_schema", "name": "s", "json_schema": {"type": "object", "required": ["city"]}}, TRUTH, {}),
    ({"type": "json_schema", "name": "s", "json_schema": {"type": "string", "pattern": "^[a-z]+$"}}, '"ABC"', {}),
    (
        {"type": "string_check", "name": "c", "operation": "contains", "case_sensitive": False},
        "It is PARIS.",
        {GROUND_TRUTH: "paris"},
    ),
    ({"type": "string_check", "name": "l", "reference_field": "label"}, "spam", {GROUND_TRUTH: "x", "label": "spam"}),
    ({"type": "regex", "name": "r", "pattern": r"\d{3}", "full_match": True}, "1234", {}),
    ({"type": "json_field", "name": "f", "path": "city"}, '{"city": "Paris"}', {GROUND_TRUTH: TRUTH}),
    (
        {"type": "text_similarity", "name": "t", "metric": "f1"},
        "the cat sat on a mat",
        {GROUND_TRUTH: "a cat sat on the red mat"},
    ),
    (
        {"type": "text_similarity", "name": "t", "metric": "rouge_l", "threshold": 0.9},
        "cat sat mat",
        {GROUND_TRUTH: "the cat sat on the mat"},
    ),
    (
        {"type": "text_similarity", "name": "t", "metric": "chrf"},
        "colour of the sky",
        {GROUND_TRUTH: "color of the sky"},
    ),
    ({"type": "text_similarity", "name": "t", "metric": "bleu"}, "no reference here", {}),  # not graded
]


def _app(**settings: Any) -> FastAPI:
    app = create_app(api_settings(jwt_secret=SecretStr("unused"), **settings))

    async def bearer_only(_: CurrentUser) -> None:
        return None

    app.dependency_overrides[limit_writes] = bearer_only
    return app


def _signed_in(app: FastAPI) -> TestClient:
    app.dependency_overrides[current_user] = lambda: "user-1"
    return TestClient(app)


@pytest.fixture(scope="module")
def client() -> TestClient:
    return _signed_in(_app(grader_run_max_chars=1000))


@pytest.mark.parametrize(("grader", "answer", "references"), CASES)
def test_the_verdict_is_the_runtime_graders(
    client: TestClient, grader: dict[str, Any], answer: str, references: dict[str, str]
) -> None:
    body = {"grader": grader, "answer": answer, "references": references, "prompt": "Where?"}
    response = client.post("/v1/graders/run", json=body)
    assert response.status_code == 200, response.text
    verdict = Grader(GRADER.validate_python(grader))("Where?", answer, references)
    expected = (
        {"graded": False, "score": None, "passed": None, "reason": None}
        if verdict is None
        else {"graded": True, "score": verdict.score, "passed": verdict.passed, "reason": verdict.reason}
    )
    assert response.json() == expected


def test_the_cases_cover_every_grader_type_and_a_partial_score(client: TestClient) -> None:
    types = {grader["type"] for grader, _, _ in CASES}
    assert types == {member.model_fields["type"].default for member in get_args(get_args(GraderConfig)[0])}
    scores = {
        client.post("/v1/graders/run", json={"grader": g, "answer": a, "references": r}).json()["score"]
        for g, a, r in CASES
    }
    assert any(score is not None and 0 < score < 1 for score in scores)


def _field_errors(response: Any) -> list[tuple[Any, ...]]:
    assert response.status_code == 422, response.text
    return [tuple(error["loc"]) for error in response.json()["detail"]]


def test_every_input_is_bounded_and_named(client: TestClient) -> None:
    grader = {"type": "string_check", "name": "c"}
    long = "x" * 1001
    response = client.post("/v1/graders/run", json={"grader": grader, "answer": long, "references": {"label": long}})
    assert _field_errors(response) == [("body", "answer"), ("body", "references", "label")]
    assert "EPOCHSCOPE_GRADER_RUN_MAX_CHARS" in response.json()["detail"][0]["msg"]
    response = client.post("/v1/graders/run", json={"grader": grader, "answer": "ok", "prompt": long})
    assert _field_errors(response) == [("body", "prompt")]
    backtracking = {"type": "regex", "name": "r", "pattern": r"(a)\1"}
    assert _field_errors(client.post("/v1/graders/run", json={"grader": backtracking, "answer": "aa"}))[0][:3] == (
        "body",
        "grader",
        "regex",
    )


def test_a_json_schema_is_bounded_as_in_a_job_config() -> None:
    client = _signed_in(_app(limits={"max_json_schema_bytes": 64}))
    schema = {"type": "object", "properties": {f"field_{n}": {"type": "string"} for n in range(5)}}
    body = {"grader": {"type": "json_schema", "name": "s", "json_schema": schema}, "answer": "{}"}
    response = client.post("/v1/graders/run", json=body)
    assert _field_errors(response) == [("body", "grader", "json_schema")]
    assert "at most 64 bytes" in response.json()["detail"][0]["msg"]


def test_a_catastrophic_pattern_is_answered_at_once(client: TestClient) -> None:
    """(a+)+$ against a run of a's that does not end the text backtracks exponentially; RE2 runs it linearly."""
    body = {"grader": {"type": "regex", "name": "r", "pattern": "(a+)+$"}, "answer": "a" * 40 + "!"}
    started = time.monotonic()
    response = client.post("/v1/graders/run", json=body)
    assert time.monotonic() - started < 2
    assert response.json()["passed"] is False


def test_a_grader_past_its_time_is_a_503() -> None:
    client = _signed_in(_app(grader_run_timeout_seconds=0.000001))
    body = {
        "grader": {"type": "text_similarity", "name": "t", "metric": "chrf"},
        "answer": "a b " * 5000,
        "references": {GROUND_TRUTH: "b a " * 5000},
    }
    response = client.post("/v1/graders/run", json=body)
    assert response.status_code == 503
    assert "EPOCHSCOPE_GRADER_RUN_TIMEOUT_SECONDS" in response.json()["detail"]


def test_without_a_token_it_is_a_401() -> None:
    response = TestClient(_app()).post(
        "/v1/graders/run", json={"grader": {"type": "json_parse", "name": "j"}, "answer": "{}"}
    )
    assert response.status_code == 401


def test_the_limits_endpoint_shows_the_bounds(client: TestClient) -> None:
    limits = client.get("/v1/limits").json()
    assert (limits["grader_run_max_chars"], limits["max_json_schema_bytes"]) == (1000, 64 * 1024)


def test_the_limits_endpoint_shows_the_grpo_bounds_from_the_settings() -> None:
    grpo = GrpoLimits(max_num_generations=6, max_completion_length=200, max_rollouts_per_step=9)
    limits = _signed_in(_app(grpo_limits=grpo)).get("/v1/limits").json()
    assert [limits[f"grpo_{name}"] for name in ("max_num_generations", "max_completion_length")] == [6, 200]
    assert limits["grpo_max_rollouts_per_step"] == 9
