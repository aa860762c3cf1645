"""Response bodies of the answer timeline and of paired comparisons (regressions, fixes and their significance)."""

from typing import Literal

from pydantic import BaseModel, Field


class RoundVerdict(BaseModel):
    round_index: int
    passed: bool


class AnswerFlip(BaseModel):
    kind: Literal["regression", "fix"] = Field(description="regression: passed, then failed; fix: failed, then passed.")
    from_round: int = Field(description="The last round the grader graded the answer in before the flip.")
    to_round: int


class GraderTimeline(BaseModel):
    grader: str
    first_passed_round: int | None = Field(description="The first round the answer passed this grader; null: never.")
    verdicts: list[RoundVerdict] = Field(description="In round order, the rounds the grader graded the answer in.")
    flips: list[AnswerFlip] = Field(description="Every change of verdict between consecutive graded rounds.")


class SampleTimeline(BaseModel):
    sample_id: str
    sample_index: int
    graders: list[GraderTimeline] = Field(description="By grader name.")


class TimelinePage(BaseModel):
    items: list[SampleTimeline] = Field(description="In sample id order.")
    next_cursor: str | None = Field(description="Continue after this page's last sample; null when the page is empty.")
    has_more: bool


class Interval(BaseModel):
    low: float
    high: float


class GraderChange(BaseModel):
    """One grader from `before` to `after` over the samples graded on both sides."""

    grader: str
    graded: int = Field(description="Shared samples this grader graded on both sides.")
    passed_before: int
    passed_after: int
    fixes: list[str] = Field(description="Sample ids that failed before and pass after.")
    regressions: list[str] = Field(description="Sample ids that passed before and fail after.")
    p_value: float = Field(description="Exact McNemar test (two-sided) of fixes against regressions.")
    significant: bool = Field(description="p_value below 0.05.")
    mean_score_before: float | None
    mean_score_after: float | None
    interval_before: Interval | None = Field(description="Paired bootstrap interval of the mean score before.")
    interval_after: Interval | None
    interval_difference: Interval | None = Field(description="Paired bootstrap interval of after - before.")
    summary: str = Field(description='In words, e.g. "round 4 vs round 2: +3 passes, -1, p = 0.62: not significant".')


class PairedComparison(BaseModel):
    """Two rounds of one job, or two jobs' latest rounds on the samples they share: what changed, and whether it
    is more than noise."""

    before: str
    after: str
    shared_samples: int = Field(description="Samples with an answer on both sides.")
    confidence: float = Field(description="Of every interval.")
    resamples: int = Field(description="Bootstrap resamples behind every interval.")
    graders: list[GraderChange] = Field(description="By grader name; graders present on both sides.")
