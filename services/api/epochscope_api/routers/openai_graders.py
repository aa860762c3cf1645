"""OpenAI's alpha grader endpoints (the SDK's `client.fine_tuning.alpha.graders.run` and `.validate`): check a
grader, and try it on one answer, before paying for a reinforcement job."""

from fastapi import APIRouter

from epochscope_api.deps import WRITE_LIMITED, CurrentUser, SettingsDep
from epochscope_api.openai_compat.grader_models import (
    EpochscopeComponent,
    OpenAIGraderRunRequest,
    OpenAIGraderRunResponse,
    OpenAIGraderValidateRequest,
    OpenAIGraderValidateResponse,
)
from epochscope_api.openai_compat.grader_run import run_openai_grader
from epochscope_api.openai_compat.graders import translate_grader

router = APIRouter(prefix="/openai/v1/fine_tuning/alpha/graders", tags=["openai"])


@router.post(
    "/run",
    response_model=OpenAIGraderRunResponse,
    dependencies=WRITE_LIMITED,  # grading costs CPU: rate-limited as a write, like POST /v1/graders/run
    operation_id="openai_run_grader",
)
async def run(request: OpenAIGraderRunRequest, _: CurrentUser, settings: SettingsDep) -> OpenAIGraderRunResponse:
    """The grader's reward for `model_sample` against `item`, by the code the trainer runs. A grader Epochscope
    does not run is a 400 naming the type and the param."""
    return await run_openai_grader(request, settings)


@router.post("/validate", response_model=OpenAIGraderValidateResponse, operation_id="openai_validate_grader")
async def validate(request: OpenAIGraderValidateRequest, _: CurrentUser) -> OpenAIGraderValidateResponse:
    """The grader as given, and the Epochscope graders it runs as; a 400 naming the param where it cannot run."""
    translated = translate_grader(request.grader)
    return OpenAIGraderValidateResponse(
        grader=request.grader,
        epochscope_graders=[
            EpochscopeComponent(grader=config, weight=weight) for config, weight in translated.components
        ],
    )
