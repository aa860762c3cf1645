"""Try a grader on one answer before paying for a job: the job form's "try it" box."""

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from epochscope_api.deps import WRITE_LIMITED, CurrentUser, SettingsDep
from epochscope_api.http.errors import QUOTA, error_responses
from epochscope_api.service_layer.graders import run_grader
from epochscope_schemas.graders import GROUND_TRUTH, GraderConfig

router = APIRouter(prefix="/v1/graders", tags=["graders"])

ReferenceName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class GraderRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grader: GraderConfig = Field(description="A grader as a job config's `predictions.graders` holds one.")
    answer: str = Field(description="The answer to grade.")
    references: dict[ReferenceName, str] = Field(
        default_factory=dict,
        max_length=32,
        description=f"Reference texts by field name (`{GROUND_TRUTH}`, or the grader's `reference_field`).",
    )
    prompt: str = Field(default="", description="The prompt the answer replies to.")


class GraderRunResult(BaseModel):
    graded: bool = Field(description="False when the grader had no reference to compare with: no score.")
    score: float | None = Field(default=None, ge=0, le=1)
    passed: bool | None = Field(default=None, description="The score reached the grader's threshold.")
    reason: str | None = Field(default=None, description="Why the score is not 1, where there is a reason.")


@router.post(
    "/run",
    response_model=GraderRunResult,
    responses=QUOTA | error_responses(503),
    dependencies=WRITE_LIMITED,  # grading costs CPU: rate-limited as a write
    operation_id="run_grader",
)
async def run(request: GraderRunRequest, _: CurrentUser, settings: SettingsDep) -> GraderRunResult:
    """The grader's verdict on one answer, by the code the trainer runs (the same score a prediction round or a
    GRPO reward gives the same text). Texts are bounded by EPOCHSCOPE_GRADER_RUN_MAX_CHARS (a 422 naming the field)."""
    verdict = await run_grader(request.grader, request.prompt, request.answer, request.references, settings)
    if verdict is None:
        return GraderRunResult(graded=False)
    return GraderRunResult(graded=True, score=verdict.score, passed=verdict.passed, reason=verdict.reason)
