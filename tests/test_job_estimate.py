"""The whole-job estimate's arithmetic per method against hand-worked figures, the GRPO generation the per-job work
limit counts, and a running job's estimated finish."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError

from epochscope.demo import estimate_lines, real_time_line
from epochscope_api.data.datasets import StoredDataset
from epochscope_api.jobs.estimate import SamplePreview, count_rounds, estimate
from epochscope_api.jobs.finish_estimate import estimated_finish
from epochscope_api.jobs.training_estimate import RowTokens, plan_training
from epochscope_api.jobs.validation import check_job_work, work_violations
from epochscope_api.response_models import Job, ProgressPoint
from epochscope_api.settings import ApiSettings
from epochscope_runtime.catalog import CatalogModel
from epochscope_schemas.config import JobConfig

DATASET_ID = "0d8f2a1e-3b7e-4a37-9a62-2f1a4d9d0c11"
MODEL = CatalogModel(
    id="m",
    display_name="M",
    source="dir:/m",
    parameters=1,
    context_length=8,
    chat_template=False,
    tokens_per_second=64.0,
    prefill_tokens_per_second=1000.0,
    train_tokens_per_second=500.0,
)
TOKENS = RowTokens(rows=1000, prompt=100_000, completion=50_000)  # 100 + 50 tokens a row
SETTINGS = ApiSettings(
    job_token_secret="s" * 40, jwt_secret="j" * 40, environment="development", store={"local_dir": "/tmp"}
)
GRPO = {"type": "grpo", "rewards": [{"grader": {"type": "string_check", "name": "same"}}], "num_generations": 4}


def job(method: dict[str, Any] | None = None, batch_size: int = 10, **fields: Any) -> JobConfig:
    predictions = {"enabled": True, "sample_count": 16, "max_new_tokens": 64, "baseline_round": False}
    config = {"model": "m", "dataset_id": DATASET_ID, "num_epochs": 3, "batch_size": batch_size, "max_length": 512}
    return JobConfig.model_validate(
        config | {"predictions": predictions, **({"method": method} if method else {})} | fields
    )


def previews(count: int) -> list[SamplePreview]:
    return [
        SamplePreview(sample_id=f"row-{i:06d}", line=i + 1, prompt="p", ground_truth=None, prompt_tokens=10)
        for i in range(count)
    ]


def test_sft_trains_each_rows_prompt_and_answer_every_epoch() -> None:
    result = estimate(job(), 1000, previews(16), MODEL, price_per_hour=3.6, tokens=TOKENS)
    training = result.training
    assert (training.method, training.steps, training.train_tokens, training.token_basis) == (
        "sft",
        300,  # 100 steps of 10 rows, 3 epochs
        450_000,  # 1000 rows x 150 tokens x 3 epochs
        "dataset",
    )
    assert training.seconds == 900.0  # 450,000 at 500/s
    assert result.seconds == 48.48  # the rounds, as before: 3072 generated at 64/s, 480 prompt tokens at 1000/s
    assert result.total_seconds == 948.48
    assert result.total_price_usd == 0.9485  # 948.48 s at 3.6 USD/h
    assert result.predictions_share == 0.0511  # 48.48 / 948.48


def test_sft_counts_the_trained_rows_at_most_max_length_each() -> None:
    assert plan_training(job(eval_fraction=0.1), 1000, TOKENS).train_tokens == 405_000  # 900 rows
    assert plan_training(job(max_length=100), 1000, TOKENS).train_tokens == 300_000  # 150 cut to 100 a row


def test_without_stored_counts_every_row_counts_at_max_length() -> None:
    plan = plan_training(job(), 1000, None)
    assert (plan.train_tokens, plan.token_basis) == (1_536_000, "max_length")  # 1000 x 512 x 3


def test_dpo_trains_prompt_with_chosen_and_prompt_with_rejected() -> None:
    dpo = {"type": "dpo"}
    counted = RowTokens(rows=1000, prompt=100_000, completion=50_000, rejected=30_000)
    assert plan_training(job(dpo), 1000, counted).train_tokens == 840_000  # (200 + 50 + 30) x 1000 x 3
    assert plan_training(job(dpo), 1000, TOKENS).train_tokens == 900_000  # rejected taken as long as chosen
    assert plan_training(job(dpo), 1000, None).train_tokens == 3_072_000  # two sequences at 512
    capped = plan_training(job({"type": "dpo", "max_steps": 50}), 1000, counted)
    assert (capped.steps, capped.epochs_completed, capped.train_tokens) == (50, 0, 140_000)  # 500 rows x 280
    assert count_rounds(job({"type": "dpo", "max_steps": 250}), 1000) == 2  # two whole epochs of 100 steps


def test_grpo_counts_its_generated_tokens_per_step_and_in_all() -> None:
    config = job(GRPO | {"max_completion_length": 64}, batch_size=8)  # 2 prompts x 4 generations a step
    result = estimate(config, 1000, previews(16), MODEL, price_per_hour=3.6, tokens=TOKENS)
    training = result.training
    assert training.steps == 1500  # 500 steps of 2 prompts, 3 epochs
    assert training.generated_tokens_per_step == 512  # 8 completions x 64
    assert training.generated_tokens == 768_000
    assert training.train_tokens == 1_968_000  # 1500 x 8 x (100 prompt + 64 completion)
    assert training.seconds == 17_136.0  # 1,968,000 at 500/s + 768,000 generated at 64/s + 1,200,000 read at 1000/s
    assert plan_training(job(GRPO, batch_size=8), 999, TOKENS).steps == 1497  # an epoch's odd prompt is dropped
    assert plan_training(job(GRPO | {"max_steps": 10}, batch_size=8), 1000, TOKENS).generated_tokens == 10 * 8 * 64
    every_100 = job(
        GRPO, batch_size=8, predictions={"enabled": True, "sample_frequency": "steps", "step_interval": 100}
    )
    assert count_rounds(every_100, 1000) == 1 + 15  # the baseline, then one every 100 of 1500 steps


def test_a_grpo_job_generating_past_the_work_limit_is_a_422_naming_the_method_field() -> None:
    config = job(GRPO | {"max_completion_length": 64}, batch_size=8)  # 768,000 by training + 3072 by rounds
    settings = SETTINGS.model_copy(update={"job_max_generated_tokens": 500_000})
    with pytest.raises(RequestValidationError) as raised:
        check_job_work(config, 1000, 1000, settings)
    (error,) = raised.value.errors()
    assert error["loc"] == ("body", "method", "max_completion_length")
    assert "771072 tokens" in error["msg"] and "768000 by GRPO" in error["msg"]
    assert "EPOCHSCOPE_JOB_MAX_GENERATED_TOKENS" in error["msg"]
    no_rounds = config.model_copy(update={"predictions": config.predictions.model_copy(update={"enabled": False})})
    assert work_violations(no_rounds, 1000, 1000, settings)  # the training's generation counts without rounds
    assert work_violations(job(), 1000, 1000, settings) == []  # SFT generates in its rounds only


def running_job(started: datetime, step: int, at: datetime, status: str = "running") -> Job:
    progress = ProgressPoint(
        step=step, max_steps=100, epoch=0.1, loss=None, learning_rate=None, samples_per_second=None, occurred_at=at
    )
    return Job.model_validate(
        {
            "job_id": "0d8f2a1e-3b7e-4a37-9a62-2f1a4d9d0c12",
            "status": status,
            "status_message": None,
            "config": job(),
            "metrics": {},
            "progress": progress if step else None,
            "created_at": started,
            "updated_at": at,
            "started_at": started,
            "finished_at": None,
        }
    )


def test_a_running_jobs_finish_is_its_pace_times_the_steps_left() -> None:
    started = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
    at = started + timedelta(seconds=30)  # 10 steps in 30 s: 3 s a step, 90 steps left
    assert estimated_finish(running_job(started, 10, at), now=at) == at + timedelta(seconds=270)
    late = at + timedelta(seconds=600)  # past the projection: one more step from now
    assert estimated_finish(running_job(started, 10, at), now=late) == late + timedelta(seconds=3)
    assert estimated_finish(running_job(started, 0, at), now=at) is None  # no step yet
    assert estimated_finish(running_job(started, 10, at, status="completed"), now=at) is None


def test_the_demo_prints_the_whole_jobs_estimate_and_the_real_time_against_it() -> None:
    estimate_json = estimate(job(), 1000, previews(16), MODEL, price_per_hour=3.6, tokens=TOKENS).model_dump()
    printed = estimate_lines(estimate_json)
    assert "about 948s for the whole job" in printed and "training 300 steps over 450000 tokens" in printed
    assert "predictions: 5% of this job's time" in printed
    finished = {"started_at": "2026-12-07T15:00:00Z", "finished_at": "2026-12-07T15:15:48Z"}  # 948 s
    assert "Real time: 948s" in real_time_line(finished, estimate_json) and "(1.00 x" in real_time_line(
        finished, estimate_json
    )


def test_a_job_trains_on_the_rows_its_method_can_use_by_the_upload_report() -> None:
    report = {"methods": {"sft": {"usable": 0}, "dpo": {"usable": 16}, "grpo": {"usable": 16}}}
    fields = dict(filename="p.jsonl", object_key="k", bytes=1, sha256="0" * 64, rows=17, usable_rows=17)
    stored = StoredDataset(uuid.uuid4(), file_type="jsonl", row_format="preference", report=report, **fields)
    assert (stored.rows_for("dpo"), stored.rows_for("sft")) == (16, 0)
    before_the_report_had_methods = StoredDataset(
        uuid.uuid4(), file_type="jsonl", row_format="chat", report={}, **fields
    )
    assert before_the_report_had_methods.rows_for("sft") == 17
