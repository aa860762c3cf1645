"""The OpenAI-compatible surface's pure parts: the job request's mapping onto an Epochscope job config (and the
field names back), ids, model names, and the errors as the official SDK reads them (on an in-process app)."""

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import openai
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from epochscope_api.errors import DomainError, JobNotFound, QuotaExceeded, UploadTooLarge
from epochscope_api.http.body_limit import BodyLimit
from epochscope_api.http.errors import install_error_handlers
from epochscope_api.main import _domain_error, _statement_timeout, status_of
from epochscope_api.openai_compat.error_handlers import install_openai_errors
from epochscope_api.openai_compat.errors import OpenAIError
from epochscope_api.openai_compat.ids import FILE, parse_id
from epochscope_api.openai_compat.job_config import BASE_LEARNING_RATE, job_config
from epochscope_api.openai_compat.job_view import fine_tuning_job
from epochscope_api.openai_compat.model_names import CheckpointRef, model_name, resolve_model_name
from epochscope_api.openai_compat.requests import JobCreateRequest
from epochscope_api.response_models import Job
from epochscope_schemas.checkpoints import CheckpointMode
from epochscope_schemas.config import JobConfig
from epochscope_schemas.events import JobStatus
from epochscope_schemas.methods import DpoMethod, SftMethod

TRAINING, VALIDATION = uuid.uuid4(), uuid.uuid4()


def config_of(method_type: str = "supervised", validation: uuid.UUID | None = None, **request: Any) -> JobConfig:
    body = JobCreateRequest(model="m", training_file=f"file-{TRAINING.hex}", **request)
    return job_config(body, TRAINING, validation, method_type)


def test_auto_hyperparameters_are_epochscopes_defaults_and_the_multiplier_an_explicit_rate() -> None:
    auto = config_of()
    assert (auto.num_epochs, auto.batch_size, auto.learning_rate) == (3, 8, BASE_LEARNING_RATE)
    assert isinstance(auto.method, SftMethod)
    given = config_of(
        method={
            "type": "supervised",
            "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 0.5}},
        }
    )
    assert (given.num_epochs, given.batch_size, given.learning_rate) == (2, 4, BASE_LEARNING_RATE * 0.5)
    legacy = config_of(hyperparameters={"n_epochs": 5})  # the deprecated top-level form
    assert legacy.num_epochs == 5
    dpo = config_of("dpo", method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.3, "n_epochs": 1}}})
    assert isinstance(dpo.method, DpoMethod) and (dpo.method.beta, dpo.num_epochs) == (0.3, 1)


def test_a_job_without_predictions_predicts_on_a_seeded_sample_of_the_validation_file_and_keeps_its_weights() -> None:
    config = config_of(validation=VALIDATION, seed=11, suffix="mine", metadata={"k": "v"})
    predictions = config.predictions
    assert predictions.enabled and predictions.samples_dataset_id == VALIDATION and predictions.seed == 11
    assert predictions.checkpoints.mode is CheckpointMode.BEST  # the final weights are kept
    assert (config.eval_dataset_id, config.name, config.metadata) == (VALIDATION, "mine", {"k": "v"})
    assert config_of().predictions.samples_dataset_id is None  # the training file's rows
    own = config_of(predictions={"sample_count": 2, "checkpoints": {"mode": "none"}})
    assert own.predictions.sample_count == 2 and own.predictions.checkpoints.mode is CheckpointMode.NONE


@pytest.mark.parametrize(
    ("method_type", "request_fields", "param"),
    [
        (
            "supervised",
            {"method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 0}}}},
            "method.supervised.hyperparameters.n_epochs",
        ),
        (
            "supervised",
            {"hyperparameters": {"learning_rate_multiplier": 5000}},
            "method.supervised.hyperparameters.learning_rate_multiplier",
        ),
        (
            "dpo",
            {"method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 11.0}}}},
            "method.dpo.hyperparameters.beta",
        ),
        ("supervised", {"integrations": [{"type": "wandb"}]}, "integrations"),
        ("supervised", {"predictions": {"temperature": 9.0}}, "predictions.temperature"),
        ("reinforcement", {"method": {"type": "reinforcement"}}, "method.reinforcement"),
        (
            "reinforcement",
            {"method": {"type": "reinforcement", "reinforcement": {"hyperparameters": {"n_epochs": "many"}}}},
            "method.reinforcement.hyperparameters.n_epochs",
        ),
    ],
)
def test_a_mapping_refusal_names_the_requests_field(method_type: str, request_fields: dict, param: str) -> None:
    with pytest.raises(OpenAIError) as refused:
        config_of(method_type, **request_fields)
    assert (refused.value.status_code, refused.value.param) == (400, param)


def test_ids_and_model_names_resolve_to_what_they_name() -> None:
    dataset_id = uuid.uuid4()
    assert parse_id(FILE, f"file-{dataset_id.hex}") == parse_id(FILE, str(dataset_id)) == dataset_id
    with pytest.raises(OpenAIError) as missing:
        parse_id(FILE, "file-nope")
    assert missing.value.status_code == 404
    ref = CheckpointRef(uuid.uuid4(), uuid.uuid4())
    assert resolve_model_name(model_name("tiny", "a:b", ref)) == ref
    assert resolve_model_name("ft:gpt-4o-mini:org::abc") is None


def errors_app(error: Exception) -> FastAPI:
    """An app with the API's error handlers (as create_app installs them) and one route on each surface that raises
    `error`; `calls` holds the time of each request."""
    app = FastAPI()
    install_error_handlers(app)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(asyncpg.QueryCanceledError, _statement_timeout)
    install_openai_errors(app, status_of)
    app.state.calls = []

    async def fail() -> None:
        app.state.calls.append(time.monotonic())
        raise error

    app.add_api_route("/openai/v1/files", fail, methods=["GET"])
    app.add_api_route("/v1/datasets", fail, methods=["GET"])
    return app


def sdk_on(app: FastAPI, retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(
        base_url="http://testserver/openai/v1", api_key="k", max_retries=retries, http_client=TestClient(app)
    )


def test_a_quota_is_the_sdks_rate_limit_error_and_it_honours_retry_after() -> None:
    app = errors_app(QuotaExceeded("active_jobs", "at most 1", retry_after=1))
    with pytest.raises(openai.RateLimitError) as limited:
        sdk_on(app, retries=1).files.list()
    assert limited.value.code == "active_jobs" and limited.value.response.headers["retry-after"] == "1"
    calls = app.state.calls
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.9  # the SDK waited as told before its retry


@pytest.mark.parametrize(
    ("error", "exception", "param"),
    [(UploadTooLarge(10), openai.APIStatusError, "file"), (JobNotFound(), openai.NotFoundError, None)],
)
def test_domain_errors_keep_their_status_in_openais_shape(error: Exception, exception: type, param: str | None) -> None:
    with pytest.raises(exception) as raised:
        sdk_on(errors_app(error)).files.list()
    assert raised.value.param == param and raised.value.status_code == status_of(error)  # type: ignore[arg-type]


def test_epochscopes_own_api_keeps_its_error_shape() -> None:
    response = TestClient(errors_app(JobNotFound())).get("/v1/datasets")
    assert response.status_code == 404 and response.json() == {"detail": "job not found"}
    invalid = TestClient(errors_app(JobNotFound())).get("/openai/v1/nowhere")
    assert invalid.status_code == 404 and set(invalid.json()["error"]) == {"message", "type", "param", "code"}


def test_a_method_not_allowed_names_every_method_served_at_the_path() -> None:
    """Starlette's 405 names only the first route's methods; both surfaces name all of them."""
    app = errors_app(JobNotFound())
    app.add_api_route("/openai/v1/files", lambda: None, methods=["POST"])  # a second route at the same path
    refused = TestClient(app).delete("/openai/v1/files")
    assert refused.status_code == 405 and refused.headers["Allow"] == "GET, POST"
    assert set(refused.json()["error"]) == {"message", "type", "param", "code"}


def test_a_body_past_the_limit_is_a_413_in_openais_shape_under_openai_only() -> None:
    app = errors_app(JobNotFound())
    app.add_middleware(BodyLimit, max_bytes=100, exempt=frozenset())
    with pytest.raises(openai.APIStatusError) as too_large:
        sdk_on(app).fine_tuning.jobs.create(model="m", training_file="file-x", metadata={"k": "v" * 200})
    assert too_large.value.status_code == 413 and "100 bytes" in too_large.value.message
    assert too_large.value.body["type"] == "invalid_request_error"
    own = TestClient(app).post("/v1/datasets", content=b"x" * 200)
    assert own.status_code == 413 and "detail" in own.json()


def test_estimated_finish_is_the_running_jobs_pace_and_the_queued_jobs_start() -> None:
    now = datetime(2026, 12, 7, 16, 0, tzinfo=UTC)
    config = JobConfig(model="tiny", dataset_id=uuid.uuid4())

    def job(status: JobStatus, **fields: Any) -> Job:
        return Job(
            job_id=uuid.uuid4(),
            status=status,
            status_message=None,
            config=config,
            metrics={},
            progress=None,
            created_at=now,
            updated_at=now,
            started_at=None,
            finished_at=None,
            **fields,
        )

    running = job(JobStatus.RUNNING, estimated_finish=now + timedelta(seconds=90))
    assert fine_tuning_job(running, "u", None, None, now).estimated_finish == int(now.timestamp()) + 90
    queued = job(JobStatus.QUEUED, estimated_start_seconds=30.0)
    assert fine_tuning_job(queued, "u", None, None, now).estimated_finish == int(now.timestamp()) + 30
    assert fine_tuning_job(job(JobStatus.COMPLETED), "u", None, None, now).estimated_finish is None
