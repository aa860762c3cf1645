"""The rule that builds preference pairs from a job's rounds, and the provenance a built dataset keeps."""

from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from epochscope_schemas.graders import GRADER_NAME_PATTERN

ChosenSource = Literal["correction", "ground_truth", "passed"]
RoundIndex = Annotated[int, Field(ge=0, le=2**31 - 1)]


class PairRule(BaseModel):
    """Which answers become pairs. Rejected: an answer that failed `grader`. Chosen: first, regressions (the answer
    an earlier round got right against the one a later round got wrong); then for every other failed answer the
    first source of `chosen` the sample has."""

    model_config = ConfigDict(extra="forbid", strict=True)

    grader: str = Field(
        pattern=GRADER_NAME_PATTERN,
        description="The grader whose pass/fail judges the answers: one of the job's, or `human` (your verdicts).",
    )
    rounds: list[RoundIndex] | None = Field(
        default=None, max_length=10_000, description="The rounds to take answers from; default every round."
    )
    chosen: list[ChosenSource] = Field(
        default=["correction", "ground_truth", "passed"],
        min_length=1,
        max_length=3,
        description="Where a failed answer's better answer comes from, in order: your corrected answer (a verdict's"
        " correction), the sample's ground truth, or the sample's latest answer that passed.",
    )
    max_pairs: int | None = Field(
        default=None, ge=1, description="At most this many pairs (regressions first); at most the server's limit."
    )


class DatasetProvenance(BaseModel):
    """A dataset built by the API from a job's predictions."""

    job_id: UUID
    rounds: list[int] = Field(description="The rounds the answers came from.")
    rule: PairRule
    pairs: int
    regressions: int = Field(description="Pairs that are regressions: an earlier right answer against a later wrong.")
