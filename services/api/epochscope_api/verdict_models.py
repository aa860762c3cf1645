"""Request and response bodies of users' verdicts on predictions (the `human` grader)."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class VerdictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # `good: 0` is no verdict: no lax coercion

    good: bool = Field(description="True: the answer is good (the `human` grader passes it); false: bad.")
    note: str | None = Field(default=None, description="Why, in a few words; at most the server's note limit.")
    correction: str | None = Field(
        default=None,
        description="The answer it should have been; a preference pair's chosen answer. At most the server's limit.",
    )


class Verdict(BaseModel):
    step: int
    sample_id: str
    round_index: int
    good: bool
    note: str | None
    correction: str | None
    created_at: datetime
    updated_at: datetime


class VerdictPage(BaseModel):
    items: list[Verdict] = Field(description="In (step, sample_id) order.")
    next_cursor: str | None = Field(description="Continue after this page; null at the end.")
