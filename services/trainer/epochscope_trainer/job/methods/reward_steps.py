"""What a GRPO job watches in its rewards at each training step: each component's fraction passing (TRL logs the
means itself) for the progress events, and a `reward_divergence` warning when one component's mean rises while
another's falls."""

import math
from collections.abc import Mapping, Sequence

from epochscope_schemas.events import WarningEvent
from epochscope_schemas.topics import TRAINING_STATUS
from epochscope_trainer.child_protocol import JobIdentity
from epochscope_trainer.job.callbacks import Publish
from epochscope_trainer.job.methods.reward_divergence import DivergenceDetector
from epochscope_trainer.job.methods.rollouts import StepCompletions


def graded(scores: Sequence[float]) -> list[float]:
    """The scores of the completions a component graded (TRL's NaN: it did not)."""
    return [score for score in scores if not math.isnan(score)]


def mean_score(scores: Sequence[float]) -> float | None:
    values = graded(scores)
    return sum(values) / len(values) if values else None


def pass_rate(scores: Sequence[float], threshold: float) -> float | None:
    values = graded(scores)
    return sum(1 for score in values if score >= threshold) / len(values) if values else None


class RewardWatch:
    """Fed each training step's scores (rank 0, the whole gathered batch).

    Args:
        thresholds: each component's pass threshold (its grader's `threshold`).
        detector: the job's divergence detector; a divergence it finds is published as a warning.
    """

    def __init__(
        self, thresholds: Mapping[str, float], detector: DivergenceDetector, publish: Publish, job: JobIdentity
    ) -> None:
        self.thresholds = thresholds
        self.detector = detector
        self.publish = publish
        self.job = job

    def observe(self, batch: StepCompletions) -> dict[str, float | None]:
        """The step's pass rate per component, after checking the step's means for a divergence."""
        means = {name: mean_score(scores) for name, scores in batch.scores.items()}
        divergence = self.detector.observe(batch.step, means)
        if divergence is not None:
            warning = WarningEvent(**self.job.envelope(), code="reward_divergence", message=divergence.message())
            self.publish(TRAINING_STATUS, warning)
        return {name: pass_rate(scores, self.thresholds[name]) for name, scores in batch.scores.items()}
