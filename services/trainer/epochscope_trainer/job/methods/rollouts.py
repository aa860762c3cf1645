"""GRPO rollouts as events: each training step's completions (all, or a seeded sample of them) with the prompt,
each reward component's score, the total and the advantage, bounded like predictions and published beside them."""

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from epochscope_schemas.events import RolloutEvent
from epochscope_schemas.methods import RolloutLogging
from epochscope_schemas.topics import TRAINING_PREDICTIONS
from epochscope_trainer.child_protocol import JobIdentity
from epochscope_trainer.job.callbacks import Publish
from epochscope_trainer.text_limits import bounded_texts


@dataclass(frozen=True)
class StepCompletions:
    """One generation batch as TRL scored it, across every rank: position i of each list is one completion."""

    step: int
    prompts: Sequence[Any]  # text, or chat messages
    completions: Sequence[Any]
    scores: Mapping[str, Sequence[float]]  # by reward component; NaN where the component did not grade it
    advantages: Sequence[float]


class RolloutRecorder:
    """Publishes a step's chosen completions as `RolloutEvent`s (rank 0 only: the batch is gathered already).

    Args:
        logging: which completions: all, or `per_step` of them drawn with a seed of (`seed`, step).
        weights: each component's weight, summing to 1. The total is TRL's: the sum of weight times score over the
            components that graded the completion (the weighted mean when all of them did).
    """

    def __init__(
        self, logging: RolloutLogging, weights: Mapping[str, float], publish: Publish, job: JobIdentity, max_bytes: int
    ) -> None:
        self.logging = logging
        self.weights = weights
        self.publish = publish
        self.job = job
        self.max_bytes = max_bytes

    def chosen(self, step: int, count: int) -> list[int]:
        if self.logging.log == "all" or count <= self.logging.per_step:
            return list(range(count))
        return sorted(random.Random(f"{self.logging.seed}:{step}").sample(range(count), self.logging.per_step))

    def record(self, batch: StepCompletions) -> None:
        for index in self.chosen(batch.step, len(batch.completions)):
            self.publish(TRAINING_PREDICTIONS, self.event(batch, index))

    def event(self, batch: StepCompletions, index: int) -> RolloutEvent:
        rewards = {name: _score(scores[index]) for name, scores in batch.scores.items()}
        graded = [(self.weights[name], score) for name, score in rewards.items() if score is not None]
        texts, truncated = bounded_texts(
            self.max_bytes, prompt=text_of(batch.prompts[index]), completion=text_of(batch.completions[index])
        )
        return RolloutEvent(
            **self.job.envelope(),
            step=batch.step,
            completion_index=index,
            prompt=texts["prompt"] or "",
            completion=texts["completion"] or "",
            rewards=rewards,
            reward=sum(weight * score for weight, score in graded) if graded else None,
            advantage=batch.advantages[index],
            truncated=truncated,
        )


def text_of(turns: Any) -> str:
    """A prompt or completion as text: itself, or its last message's content (conversational rows)."""
    return turns if isinstance(turns, str) else turns[-1]["content"]


def _score(value: float) -> float | None:
    return None if math.isnan(value) else value
