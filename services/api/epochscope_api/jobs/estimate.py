"""What a job's predictions will cost: rounds, predictions, prompt and generated tokens, seconds and dollars.

Pure arithmetic over the job config, its dataset's real row count, the prediction set's real prompt token counts
and the catalog model's throughput; shared by the REST endpoint and the web UI's job form. Rounds follow the
trainer's callback: the baseline round before training, then one per epoch end, evaluation (once an epoch) or
`step_interval` global steps, at most one per step. Generated tokens are an upper bound (every answer counted at
max_new_tokens); prompt tokens are exact when the model has a tokenizer in the catalog.
"""

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from epochscope_runtime.catalog import CatalogModel
from epochscope_schemas.config import JobConfig, SampleFrequency


class EstimateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config: JobConfig


class SamplePreview(BaseModel):
    """One row of the prediction set, as the trainer will ask it."""

    sample_id: str
    line: int = Field(description="1-based row of the dataset file (its line in JSONL).")
    prompt: list[dict[str, Any]] | str = Field(description="The chat messages before the answer, or the text prompt.")
    ground_truth: str | None
    prompt_tokens: int | None = Field(description="Tokens of the rendered prompt; null without the model's tokenizer.")


class Estimate(BaseModel):
    rounds: int = Field(description="Prediction rounds, the baseline round included.")
    predictions: int
    prompt_tokens: int | None = Field(description="Prompt tokens read over all rounds; null without a tokenizer.")
    generated_tokens: int = Field(description="Upper bound: every prediction at max_new_tokens.")
    seconds: float
    price_usd: float
    tokens_per_second: float = Field(description="The generation throughput the estimate assumed.")
    train_rows: int = Field(description="Rows the job trains on (after an eval_fraction hold-out).")
    samples: list[SamplePreview] = Field(description="The exact prediction set the job will use.")


def train_rows(config: JobConfig, usable_rows: int) -> int:
    """Rows left to train on: the trainer holds out max(1, round(n * eval_fraction)) rows for eval."""
    if config.eval_fraction is None:
        return usable_rows
    return usable_rows - max(1, round(usable_rows * config.eval_fraction))


def count_rounds(config: JobConfig, usable_rows: int) -> int:
    predictions = config.predictions
    if not predictions.enabled:
        return 0
    baseline = 1 if predictions.baseline_round else 0
    if predictions.sample_frequency == SampleFrequency.STEPS:
        total_steps = math.ceil(max(train_rows(config, usable_rows), 0) / config.batch_size) * config.num_epochs
        return baseline + total_steps // (predictions.step_interval or total_steps or 1)
    return baseline + config.num_epochs  # one round per epoch end, or per evaluation (once an epoch)


def estimate(
    config: JobConfig, usable_rows: int, samples: list[SamplePreview], model: CatalogModel, price_per_hour: float
) -> Estimate:
    rounds = count_rounds(config, usable_rows)
    predictions = rounds * len(samples)
    generated = predictions * config.predictions.max_new_tokens
    counts = [sample.prompt_tokens for sample in samples]
    prompt_tokens = None if None in counts else rounds * sum(count or 0 for count in counts)
    seconds = generated / model.tokens_per_second + (prompt_tokens or 0) / model.prefill_tokens_per_second
    return Estimate(
        rounds=rounds,
        predictions=predictions,
        prompt_tokens=prompt_tokens,
        generated_tokens=generated,
        seconds=round(seconds, 2),
        price_usd=round(seconds / 3600 * price_per_hour, 4),
        tokens_per_second=model.tokens_per_second,
        train_rows=train_rows(config, usable_rows),
        samples=samples if config.predictions.enabled else [],
    )
