"""What a job's training will do, per method: optimizer steps, the tokens its updates read, and for GRPO the tokens
it generates; pure arithmetic over the config, the training rows and the upload's stored token counts.

Steps follow the trainers: SFT and DPO take `batch_size` rows a step (a short last batch per epoch); GRPO takes
`batch_size / num_generations` prompts a step and drops an epoch's short last batch (TRL's RepeatSampler). A
`max_steps` replaces the epochs (transformers' Trainer trains exactly that many steps).

Tokens come from the dataset's stored counts (`report.tokens[model]`: each usable row's rendered prompt and its
answer), scaled to the rows trained on and times the passes over them:
- SFT: prompt + answer of each row, at most `max_length` a row;
- DPO: each row is two sequences, prompt + chosen and prompt + rejected (the chosen answer's count stands in for
  the rejected one where the upload stores none), at most `max_length` each;
- GRPO: each step generates `batch_size` completions (prompts x num_generations) of at most
  `max_completion_length` tokens; its update reads those completions with their prompts.
Without stored counts (the model has no tokenizer on the API) every sequence counts at `max_length`: an upper bound.
"""

import math
from dataclasses import dataclass
from typing import Any, Literal

from epochscope_schemas.config import JobConfig
from epochscope_schemas.methods import DpoMethod, GrpoMethod

TokenBasis = Literal["dataset", "max_length"]


@dataclass(frozen=True)
class RowTokens:
    """Token totals over a dataset's usable rows (its upload report's counts for one model)."""

    rows: int
    prompt: int
    completion: int
    rejected: int | None = None  # preference rows' rejected answers, where the upload counts them

    @classmethod
    def of(cls, usable_rows: int, stored: dict[str, Any] | None) -> "RowTokens | None":
        """From the report's `tokens[model]` entry; None when the upload has no counts for the model."""
        if not stored or usable_rows <= 0:
            return None
        return cls(usable_rows, stored["prompt_tokens"], stored["completion_tokens"], stored.get("rejected_tokens"))


@dataclass(frozen=True)
class TrainingPlan:
    steps: int
    epochs_completed: int  # whole passes over the rows (an epoch round runs at each)
    train_tokens: int  # tokens the updates read, in all
    generated_tokens_per_step: int  # GRPO's completions a step at max_completion_length; 0 for other methods
    generated_tokens: int
    generation_prompt_tokens: int  # prompt tokens GRPO's generation reads, in all
    token_basis: TokenBasis


def train_rows(config: JobConfig, usable_rows: int) -> int:
    """Rows left to train on: the trainer holds out max(1, round(n * eval_fraction)) rows for eval."""
    if config.eval_fraction is None:
        return usable_rows
    return usable_rows - max(1, round(usable_rows * config.eval_fraction))


def rows_per_step(config: JobConfig) -> int:
    """Dataset rows one step reads: batch_size, or for GRPO its prompts (batch_size / num_generations)."""
    if isinstance(config.method, GrpoMethod):
        return config.batch_size // config.method.num_generations
    return config.batch_size


def steps_per_epoch(config: JobConfig, rows: int) -> int:
    if isinstance(config.method, GrpoMethod):
        return rows // rows_per_step(config)
    return math.ceil(max(rows, 0) / config.batch_size)


def training_steps(config: JobConfig, usable_rows: int) -> tuple[int, int]:
    """(optimizer steps, whole epochs completed) of the job."""
    per_epoch = steps_per_epoch(config, train_rows(config, usable_rows))
    max_steps = getattr(config.method, "max_steps", None)
    if max_steps is None:
        return per_epoch * config.num_epochs, config.num_epochs
    return max_steps, (max_steps // per_epoch if per_epoch else 0)


def generated_tokens_per_step(config: JobConfig) -> int:
    """GRPO's completions a step (its prompts x num_generations = batch_size) at max_completion_length; 0 for a
    method that generates nothing."""
    if isinstance(config.method, GrpoMethod):
        return config.batch_size * config.method.max_completion_length
    return 0


def plan_training(config: JobConfig, usable_rows: int, tokens: RowTokens | None) -> TrainingPlan:
    steps, epochs = training_steps(config, usable_rows)
    basis: TokenBasis = "dataset" if tokens is not None else "max_length"
    limit = config.max_length
    method = config.method
    if isinstance(method, GrpoMethod):
        prompt = tokens.prompt / tokens.rows if tokens else limit
        per_step = generated_tokens_per_step(config)
        generation_prompts = round(steps * config.batch_size * prompt)
        train = generation_prompts + steps * per_step
        return TrainingPlan(steps, epochs, train, per_step, steps * per_step, generation_prompts, basis)
    sequences = 2 if isinstance(method, DpoMethod) else 1
    if tokens is None:
        per_row = float(sequences * limit)
    elif isinstance(method, DpoMethod):
        rejected = tokens.rejected if tokens.rejected is not None else tokens.completion
        per_row = (2 * tokens.prompt + tokens.completion + rejected) / tokens.rows
    else:
        per_row = (tokens.prompt + tokens.completion) / tokens.rows
    train = round(_rows_read(config, usable_rows, steps) * min(per_row, sequences * limit))
    return TrainingPlan(steps, epochs, train, 0, 0, 0, basis)


def _rows_read(config: JobConfig, usable_rows: int, steps: int) -> int:
    """Rows the updates read, in all: every training row each epoch, or with max_steps that many full batches."""
    if getattr(config.method, "max_steps", None) is None:
        return train_rows(config, usable_rows) * config.num_epochs
    return steps * config.batch_size
