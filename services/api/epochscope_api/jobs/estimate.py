"""What a job's predictions will cost: rounds, predictions, prompt and generated tokens, seconds and dollars.

Pure arithmetic over the job config, its dataset's real row count, the prediction set's real prompt token counts
and the catalog model's throughput; shared by the REST endpoint and the web UI's job form. Rounds follow the
trainer's callback: the baseline round before training, then one per epoch end, evaluation (once an epoch) or
`step_interval` global steps, at most one per step. Generated tokens are an upper bound (every answer counted at
max_new_tokens); prompt tokens are exact when the model has a tokenizer in the catalog.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from epochscope_api.jobs.training_estimate import RowTokens, TokenBasis, plan_training, train_rows, training_steps
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


class TrainingEstimate(BaseModel):
    method: str = Field(description="The job's training method: sft, dpo or grpo.")
    steps: int = Field(description="Optimizer steps.")
    train_tokens: int = Field(description="Tokens the updates read, over every step.")
    generated_tokens_per_step: int = Field(
        description="GRPO: completions a step (prompts x num_generations) x max_completion_length; 0 otherwise."
    )
    generated_tokens: int = Field(description="GRPO: generated tokens over every step (an upper bound); 0 otherwise.")
    token_basis: TokenBasis = Field(
        description="`dataset`: from the upload's stored token counts; `max_length`: no counts for this model, "
        "every sequence at max_length (an upper bound)."
    )
    seconds: float = Field(description="Training time: updates, and GRPO's generation.")
    train_tokens_per_second: float = Field(description="The training throughput the estimate assumed.")


class Estimate(BaseModel):
    rounds: int = Field(description="Prediction rounds, the baseline included.")
    predictions: int
    prompt_tokens: int | None = Field(description="Prompt tokens read over all rounds; null without a tokenizer.")
    generated_tokens: int = Field(description="Upper bound: every prediction at max_new_tokens.")
    seconds: float = Field(description="The prediction rounds' generation time.")
    price_usd: float = Field(description="The prediction rounds' price.")
    tokens_per_second: float = Field(description="The generation throughput the estimate assumed.")
    train_rows: int = Field(description="Rows the job trains on (after an eval_fraction hold-out).")
    samples: list[SamplePreview] = Field(description="The exact prediction set the job will use.")
    training: TrainingEstimate
    total_seconds: float = Field(description="The whole job: training and prediction rounds.")
    total_price_usd: float
    predictions_share: float = Field(description="The prediction rounds' share of the job's time, 0 to 1.")


def count_rounds(config: JobConfig, usable_rows: int) -> int:
    predictions = config.predictions
    if not predictions.enabled:
        return 0
    baseline = 1 if predictions.baseline_round else 0
    steps, epochs = training_steps(config, usable_rows)
    if predictions.sample_frequency == SampleFrequency.STEPS:
        return baseline + steps // (predictions.step_interval or steps or 1)
    return baseline + epochs  # one round per epoch end, or per evaluation (once an epoch)


def estimate(
    config: JobConfig,
    usable_rows: int,
    samples: list[SamplePreview],
    model: CatalogModel,
    price_per_hour: float,
    tokens: RowTokens | None = None,
) -> Estimate:
    """`tokens`: the training dataset's stored token counts for the model (None: none stored)."""
    rounds = count_rounds(config, usable_rows)
    predictions = rounds * len(samples)
    generated = predictions * config.predictions.max_new_tokens
    counts = [sample.prompt_tokens for sample in samples]
    prompt_tokens = None if None in counts else rounds * sum(count or 0 for count in counts)
    seconds = _generation_seconds(model, generated, prompt_tokens or 0)
    plan = plan_training(config, usable_rows, tokens)
    training_seconds = plan.train_tokens / model.train_tokens_per_second + _generation_seconds(
        model, plan.generated_tokens, plan.generation_prompt_tokens
    )
    total = seconds + training_seconds
    return Estimate(
        rounds=rounds,
        predictions=predictions,
        prompt_tokens=prompt_tokens,
        generated_tokens=generated,
        seconds=round(seconds, 2),
        price_usd=_price(seconds, price_per_hour),
        tokens_per_second=model.tokens_per_second,
        train_rows=train_rows(config, usable_rows),
        samples=samples if config.predictions.enabled else [],
        training=TrainingEstimate(
            method=config.method.type,
            steps=plan.steps,
            train_tokens=plan.train_tokens,
            generated_tokens_per_step=plan.generated_tokens_per_step,
            generated_tokens=plan.generated_tokens,
            token_basis=plan.token_basis,
            seconds=round(training_seconds, 2),
            train_tokens_per_second=model.train_tokens_per_second,
        ),
        total_seconds=round(total, 2),
        total_price_usd=_price(total, price_per_hour),
        predictions_share=round(seconds / total, 4) if total else 0.0,
    )


def _generation_seconds(model: CatalogModel, generated: int, prompt_tokens: int) -> float:
    return generated / model.tokens_per_second + prompt_tokens / model.prefill_tokens_per_second


def _price(seconds: float, price_per_hour: float) -> float:
    return round(seconds / 3600 * price_per_hour, 4)
