"""Cost estimate of a predictions config: how many rounds, predictions, tokens, seconds and dollars.

Pure arithmetic over throughput and price settings, shared by the REST endpoint and the web UI.
Tokens are an upper bound: every prediction is counted at max_new_tokens.
"""

import math

from pydantic import BaseModel, ConfigDict, Field

from epochscope_schemas.config import PredictionsConfig, SampleFrequency


class EstimateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    predictions: PredictionsConfig
    num_epochs: int = Field(ge=1, le=100)
    dataset_size: int = Field(ge=1, le=100_000_000, description="Training rows.")
    batch_size: int = Field(default=8, ge=1, le=1024)
    model: str | None = Field(default=None, description="Model id, to pick its throughput setting.")


class Estimate(BaseModel):
    rounds: int
    predictions: int
    tokens: int
    seconds: float
    price_usd: float
    tokens_per_second: float = Field(description="The generation throughput the estimate assumed.")


def count_rounds(request: EstimateRequest) -> int:
    config = request.predictions
    if not config.enabled:
        return 0
    if config.sample_frequency == SampleFrequency.STEPS:
        total_steps = math.ceil(request.dataset_size / request.batch_size) * request.num_epochs
        return total_steps // (config.step_interval or total_steps)
    return request.num_epochs  # one round per epoch end, or per evaluation (once an epoch)


def estimate(request: EstimateRequest, tokens_per_second: float, price_per_hour: float) -> Estimate:
    rounds = count_rounds(request)
    predictions = rounds * request.predictions.sample_count
    tokens = predictions * request.predictions.max_new_tokens
    seconds = tokens / tokens_per_second
    return Estimate(
        rounds=rounds,
        predictions=predictions,
        tokens=tokens,
        seconds=round(seconds, 2),
        price_usd=round(seconds / 3600 * price_per_hour, 4),
        tokens_per_second=tokens_per_second,
    )
