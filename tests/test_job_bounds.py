"""Limits on a job's total work: prediction rounds and generated tokens per job, as the estimate counts them
(jobs/validation.py), refused at submission and by the estimate with a 422 naming the field and the setting."""

import uuid

import pytest
from fastapi.exceptions import RequestValidationError

from epochscope_api.jobs.validation import check_job_work, work_violations
from epochscope_api.settings import ApiSettings
from epochscope_schemas.config import JobConfig

SETTINGS = ApiSettings(
    job_token_secret="s" * 40, jwt_secret="j" * 40, environment="development", store={"local_dir": "/tmp"}
)


def steps_config(epochs: int, step_interval: int, max_new_tokens: int = 64, samples: int = 8) -> JobConfig:
    predictions = {
        "enabled": True,
        "sample_frequency": "steps",
        "step_interval": step_interval,
        "max_new_tokens": max_new_tokens,
        "sample_count": samples,
    }
    return JobConfig(model="m", dataset_id=uuid.uuid4(), num_epochs=epochs, batch_size=10, predictions=predictions)


def test_a_job_within_the_limits_passes() -> None:
    assert work_violations(steps_config(epochs=3, step_interval=10), 10_000, 10_000, SETTINGS) == []


def test_too_many_rounds_is_a_422_naming_the_field_and_the_setting() -> None:
    config = steps_config(epochs=100, step_interval=10)  # 100,000 steps: 10,001 rounds
    with pytest.raises(RequestValidationError) as raised:
        check_job_work(config, 10_000, 10_000, SETTINGS)
    (error,) = [e for e in raised.value.errors() if e["loc"] == ("body", "predictions", "step_interval")]
    assert "10001 prediction rounds" in error["msg"] and "EPOCHSCOPE_JOB_MAX_ROUNDS" in error["msg"]


def test_too_many_generated_tokens_is_a_422_naming_the_field_and_the_setting() -> None:
    config = steps_config(epochs=10, step_interval=10, max_new_tokens=512, samples=64)  # 101 rounds
    settings = SETTINGS.model_copy(update={"job_max_generated_tokens": 1_000_000})
    errors = work_violations(config, 1000, 1000, settings)
    assert [loc for loc, _ in errors] == [("predictions", "max_new_tokens")]
    assert f"{101 * 64 * 512} tokens" in errors[0][1] and "EPOCHSCOPE_JOB_MAX_GENERATED_TOKENS" in errors[0][1]


def test_a_small_prediction_set_counts_its_real_rows() -> None:
    config = steps_config(epochs=10, step_interval=10, max_new_tokens=512, samples=64)
    settings = SETTINGS.model_copy(update={"job_max_generated_tokens": 101 * 2 * 512})
    assert work_violations(config, 1000, 2, settings) == []  # 2 sample rows, not 64
